# PERSE Studio on one NVIDIA GPU: serves app.py on 0.0.0.0:7860.
#
#   docker build -t perse-studio .
#   docker run --gpus all -p 7860:7860 perse-studio
#
# The base must be a CUDA *devel* image whose major CUDA version matches the torch wheel's (PyPI's
# torch==2.13.0 for Linux x86_64 is a CUDA 13 build): nvcc compiles gsplat's kernels at build time.
# A build-time check below fails with the exact --build-arg to use if they ever disagree.
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-devel-ubuntu22.04
FROM ${CUDA_IMAGE}

# GPU generations to compile gsplat for: T4 7.5, A100 8.0, A10G 8.6, L4/L40S 8.9, H100/H200 9.0; +PTX lets
# a newer GPU's driver compile the 9.0 code for itself (when the container starts, in the warm-up render).
ARG TORCH_CUDA_ARCH_LIST="7.5;8.0;8.6;8.9;9.0+PTX"
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST} \
    TORCH_EXTENSIONS_DIR=/opt/torch_extensions \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    PERSE_WORK_ROOT=/tmp/perse-sessions

# Python 3.11 is what requirements.txt was resolved and tested with; libgl1/libglib2.0-0 for OpenCV and
# mediapipe; ninja for torch's extension builder; ffmpeg for MP4 export.
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common gpg-agent ca-certificates \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev \
        build-essential ninja-build libgl1 libglib2.0-0 ffmpeg \
 && rm -rf /var/lib/apt/lists/*

# Hugging Face Docker Spaces run the container as uid 1000.
RUN useradd -m -u 1000 user \
 && python3.11 -m venv /opt/venv \
 && mkdir -p /opt/torch_extensions /app \
 && chown -R user /opt/venv /opt/torch_extensions /app
ENV PATH=/opt/venv/bin:$PATH HOME=/home/user
USER user
WORKDIR /app

# requirements.txt pins torch==2.13.0; from PyPI on Linux x86_64 that resolves to the CUDA build of it.
COPY --chown=user requirements.txt .
RUN pip install --upgrade pip \
 && pip install -r requirements.txt \
 && python -c "import torch; assert torch.version.cuda, f'torch {torch.__version__} is a CPU build; the image needs the CUDA wheel from PyPI'"

# nvcc and torch must share a CUDA major version, or the extension build fails with a cryptic error.
RUN python - <<'PY'
import re, subprocess, torch
nvcc = re.search(r"release (\d+)\.(\d+)", subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout)
torch_major = torch.version.cuda.split(".")[0]
if nvcc.group(1) != torch_major:
    raise SystemExit(f"nvcc is CUDA {nvcc.group(1)}.{nvcc.group(2)} but torch {torch.__version__} was built with CUDA "
                     f"{torch.version.cuda}: rebuild with --build-arg CUDA_IMAGE=nvidia/cuda:{torch.version.cuda}.0-devel-ubuntu22.04 "
                     "(or the closest published tag)")
print(f"nvcc CUDA {nvcc.group(1)}.{nvcc.group(2)}, torch {torch.__version__} (CUDA {torch.version.cuda})")
PY

# Compile gsplat's CUDA extension now (nvcc needs no GPU), so no visitor waits for a JIT build: gsplat's
# first import builds it (torch.utils.cpp_extension, for TORCH_CUDA_ARCH_LIST) into
# $TORCH_EXTENSIONS_DIR/gsplat_cuda/gsplat_cuda.so; without nvcc it would leave _C None, hence the assert.
RUN python -c "from gsplat.cuda._backend import _C; assert _C is not None, 'gsplat CUDA extension did not build'" \
 && du -sh /opt/torch_extensions
# The app loads that file directly (perse.core.render.load_gsplat). gsplat's own loader would re-enter the
# JIT builder at every start, which rebuilds for a minute or more whenever its inputs look different, e.g.
# with TORCH_CUDA_ARCH_LIST changed at run time.
ENV PERSE_GSPLAT_PREBUILT=/opt/torch_extensions/gsplat_cuda/gsplat_cuda.so

COPY --chown=user . .
RUN pip install --no-deps --no-build-isolation -e . \
 && python -c "import sys; from perse.core.render import load_gsplat; load_gsplat(); from gsplat.cuda._backend import _C; \
assert _C is sys.modules['gsplat.csrc'] and _C.__file__ == '$PERSE_GSPLAT_PREBUILT', f'gsplat loaded {_C}, not the prebuilt extension'"

EXPOSE 7860
CMD ["python", "app.py"]
