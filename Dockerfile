# The image of every cdc process. The arguments after the image name are the cdc
# command line:
#
#   docker build -t member-cdc .                       (or: podman build -t member-cdc .)
#   docker run --rm member-cdc --help
#   docker run --rm -e CDC_DATABASE_URL=... -e GOOGLE_CLOUD_PROJECT=... member-cdc run
#
# Only the runtime dependencies are installed (not the [dev] extra), in a virtual
# environment built in the first stage; the image runs as an unprivileged user.
# PYTHON_IMAGE may name another Python 3.11 image, e.g. a copy in your own registry.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# A venv without pip: the base image's pip installs into it, so the copy below
# carries the project and its dependencies and nothing else.
RUN python -m venv --without-pip /opt/member-cdc
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cdc ./cdc
COPY consumers ./consumers
RUN python -m pip --python /opt/member-cdc/bin/python install . \
 && /opt/member-cdc/bin/cdc --help >/dev/null

FROM ${PYTHON_IMAGE}
RUN groupadd --gid 10001 cdc \
 && useradd --no-log-init --uid 10001 --gid cdc --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin cdc
COPY --from=build /opt/member-cdc /opt/member-cdc
ENV PATH=/opt/member-cdc/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# numeric, so that a cluster can check runAsNonRoot without looking the name up
USER 10001:10001
# /healthz and /metrics: cdc run 8080, cdc consume firestore 8081, cdc consume audit 8082
EXPOSE 8080 8081 8082
ENTRYPOINT ["cdc"]
CMD ["--help"]
