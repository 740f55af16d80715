# Naive baseline for benchmarks/crossbuild (not what the plugin generates): everything is
# installed in the per-platform stage, so pip runs under QEMU for linux/arm64 and linux/arm/v7.
ARG MIRROR=localhost:5000/library
FROM ${MIRROR}/python:3.11-slim
ARG PIP_INDEX_URL=http://127.0.0.1:3141/simple/
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
CMD ["python", "app.py"]
