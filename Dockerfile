# kopilot controller image (the Helm chart in deploy/helm/kopilot runs it), for machines that can
# pull python:3.11-slim:
#   docker build -t kopilot-controller:0.1.0 .
# The tested build needs no registry: bash scripts/build-images.sh (buildah; docs/images.md).
# Two stages: wheels are built with the full toolchain, the runtime stage only installs them and
# runs as an unprivileged user with a read-only root filesystem in mind (/tmp is a volume).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels -c constraints.txt ".[kube]"

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MPLCONFIGDIR=/tmp/matplotlib
RUN groupadd --gid 65532 kopilot && useradd --uid 65532 --gid 65532 --no-create-home kopilot
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "kopilot[kube]" && rm -rf /wheels
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["kopilot"]
CMD ["--help"]
