# One image for the API and the workers. The worker build passes a CUDA wheel index for torch:
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 .
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MUPREDICT_CACHE_DIR=/var/cache/mupredict

WORKDIR /srv/mupredict

# torch first and on its own layer: it is the large, rarely changing part.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

COPY pyproject.toml README.md ./
COPY app ./app
COPY trainer ./trainer
COPY predictor ./predictor
COPY migrations ./migrations
COPY examples ./examples
RUN pip install . && useradd --create-home --uid 1000 mupredict \
    && mkdir -p /var/cache/mupredict && chown mupredict /var/cache/mupredict

USER mupredict
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --retries=5 \
    CMD python -c "import httpx; httpx.get('http://127.0.0.1:8000/healthz').raise_for_status()"
CMD ["mupredict", "serve", "--host", "0.0.0.0", "--port", "8000"]
