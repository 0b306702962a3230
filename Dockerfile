# anncnn-tune worker and dashboard image (one image, two commands; see docker-compose.yml).
#
#   docker build -t anncnn-tune .                                   # CPU torch (small image)
#   docker build -t anncnn-tune --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .   # CUDA hosts
#
# No credentials are baked in: the storage URL comes from the environment at run time
# (ANNCNN_TUNE_STORAGE), the compose file builds it from the .env file.
FROM python:3.11-slim

# CPU wheels by default: torch from PyPI would pull gigabytes of CUDA libraries.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ANNCNN_TUNE_DATA=/data \
    ANNCNN_TUNE_ARTIFACTS=/artifacts

WORKDIR /app
# Dependencies first, so that a code change does not reinstall torch.
COPY pyproject.toml constraints.txt README.md ./
# (empty package folders stand in for the code: pyproject lists every subpackage)
RUN for p in . cli data results search service training; do mkdir -p anncnn_tune/$p && touch anncnn_tune/$p/__init__.py; done \
 && mkdir studies \
 && pip install --extra-index-url "$TORCH_INDEX" -c constraints.txt . \
 && pip uninstall -y anncnn-tune
COPY anncnn_tune ./anncnn_tune
COPY studies ./studies
RUN pip install --no-deps -c constraints.txt . \
 && useradd --create-home --uid 1000 anncnn \
 && mkdir -p /data /artifacts && chown anncnn:anncnn /data /artifacts

USER anncnn
VOLUME ["/data", "/artifacts"]
EXPOSE 8080
# Exec form: the CLI is the container's main process and receives `docker stop`'s SIGTERM itself
# (it then marks its running trial failed with the reason and exits 130).
ENTRYPOINT ["anncnn-tune"]
CMD ["--help"]
