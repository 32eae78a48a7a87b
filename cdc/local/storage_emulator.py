"""The Cloud Storage emulator of the local stack: ``gcp-storage-emulator``, in memory,
made to honour ``ifGenerationMatch`` on uploads as Cloud Storage does.

The emulator stores whatever it is sent, preconditions or not, so two roster
processes could not be tested against it. Here its three upload handlers first
compare the request's ``ifGenerationMatch`` with the object's generation (0:
absent) and answer 412 Precondition Failed when they differ. Its HTTP server
handles one request at a time, so the check and the write cannot interleave.

Run as ``python -m cdc.local.storage_emulator --port N``; ``cdc stack up`` and
the tests start it (cdc/local/stack.py). Not used in production.
"""

from __future__ import annotations

import argparse
import functools
from http import HTTPStatus
from typing import Any


def _current_generation(storage: Any, bucket: str, name: str) -> int:
    from gcp_storage_emulator.exceptions import NotFound

    try:
        return int(storage.get_file_obj(bucket, name).get("generation") or 0)
    except NotFound:
        return 0


def _object_name(request: Any) -> str | None:
    if "name" in request.query:
        return str(request.query["name"][0])
    data = request.data
    if isinstance(data, dict):
        meta = data.get("meta")
        name = meta.get("name") if isinstance(meta, dict) else data.get("name")
        return str(name) if name else None
    return None


def _guarded(upload: Any) -> Any:
    @functools.wraps(upload)
    def wrapper(request: Any, response: Any, storage: Any) -> Any:
        wanted = request.query.get("ifGenerationMatch")
        name = _object_name(request)
        if wanted and name is not None:
            current = _current_generation(storage, request.params["bucket_name"], name)
            if int(wanted[0]) != current:
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json({"error": {"code": 412, "message": "conditionNotMet",
                                         "errors": [{"reason": "conditionNotMet",
                                                     "message": "Precondition Failed"}]}})
                return None
        return upload(request, response, storage)

    return wrapper


def patch() -> None:
    from gcp_storage_emulator.handlers import objects

    for name in ("_media_upload", "_multipart_upload", "_create_resumable_upload"):
        setattr(objects, name, _guarded(getattr(objects, name)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bucket", help="a bucket to create at the start")
    args = parser.parse_args()
    patch()
    from gcp_storage_emulator.server import create_server

    create_server(args.host, args.port, in_memory=True, default_bucket=args.bucket).run()


if __name__ == "__main__":
    main()
