from cdc.cli import run_cli

if __name__ == "__main__":  # not when a spawned process imports this module (cdc verify)
    run_cli()
