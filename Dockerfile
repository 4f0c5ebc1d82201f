# The launchgate operator image.
#   docker build -t launchgate-operator:0.1.0 .
# The manifests run it as uid/gid 65532 with a read-only root filesystem, no capabilities and
# RuntimeDefault seccomp; /tmp is the only writable path (an emptyDir in the Deployment).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# A virtualenv at a fixed path, copied whole into the runtime stage (same base image, same path).
RUN python -m venv /opt/launchgate \
 && /opt/launchgate/bin/pip install . \
 && /opt/launchgate/bin/launchgate --version

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="launchgate-operator" \
      org.opencontainers.image.description="Staged, metric-gated, approval-gated canary releases of AI agents on Kubernetes" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/launchgate /opt/launchgate
# Kopf names the operator after the login user (getpass.getuser()), which fails for a uid without
# a passwd entry: give 65532 one, and USER for any other uid a pod's runAsUser may pick.
RUN echo 'launchgate:x:65532:65532:launchgate:/tmp:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'launchgate:x:65532:' >> /etc/group
# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only (bytecode was compiled at install).
# HOME=/tmp: the one writable path; nothing is written there, but libraries look HOME up.
ENV PATH=/opt/launchgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    USER=launchgate
USER 65532:65532
WORKDIR /tmp
# 8000: /metrics (LAUNCHGATE_METRICS_PORT); 8080: /healthz (the --liveness endpoint).
EXPOSE 8000 8080
ENTRYPOINT ["launchgate", "run"]
CMD ["--liveness", "http://0.0.0.0:8080/healthz"]
