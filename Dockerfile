# The image for the API and the Celery workers (same code, different command).
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    SCARF_NO_ANALYTICS=true \
    DO_NOT_TRACK=true

RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1 tesseract-ocr tesseract-ocr-eng tesseract-ocr-osd pandoc git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Torch first and pinned: the CPU build keeps the image small. Point TORCH_INDEX_URL at a CPU wheel index
# where your registry offers one; without it pip takes torch 2.13.0 from the default index.
ARG TORCH_INDEX_URL=""
RUN if [ -n "$TORCH_INDEX_URL" ]; then pip install --no-cache-dir "torch==2.13.0" --index-url "$TORCH_INDEX_URL"; \
    else pip install --no-cache-dir "torch==2.13.0"; fi

COPY pyproject.toml README.md ./
COPY snapdex ./snapdex
COPY db ./db
COPY encoders ./encoders
COPY store ./store
COPY ingest ./ingest
COPY retrieval ./retrieval
COPY index_snapshots ./index_snapshots
COPY eval ./eval
COPY api ./api
COPY workers ./workers
COPY notify ./notify
COPY sources ./sources
COPY errors ./errors
COPY options ./options
COPY online ./online
COPY wire ./wire
RUN pip install --no-cache-dir .
# The ONNX models (SNAPDEX_EMBEDDER_BACKEND, default onnx-int8) exported once, at build time, into the image.
ENV SNAPDEX_MODELS_DIR=/opt/snapdex/models
RUN snapdex model export --backend all

RUN useradd --create-home --uid 10001 snapdex && mkdir -p /data && chown snapdex /data
USER snapdex
VOLUME ["/data"]
EXPOSE 8000
CMD ["snapdex", "serve", "--host", "0.0.0.0", "--port", "8000"]
