# A Prefect worker that runs ferv's flows on a GPU (SCRFD on onnxruntime-gpu with CUDA and cuDNN from pip).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /opt/ferv
COPY pyproject.toml uv.lock README.md ./
COPY schemas schemas
COPY pipeline pipeline
COPY annotation annotation
COPY flows flows
COPY cli cli
COPY configs configs
COPY prefect.yaml prefect.yaml
# insightface pulls the CPU onnxruntime; the GPU build replaces it afterwards (both own the same module).
RUN uv sync --frozen --no-dev && \
    uv pip uninstall onnxruntime && \
    uv pip install "onnxruntime-gpu[cuda,cudnn]>=1.20"
ENV PATH=/opt/ferv/.venv/bin:$PATH
