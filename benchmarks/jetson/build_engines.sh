#!/usr/bin/env bash
# Build fp16 and int8 TensorRT engine folders of one model on a Jetson (or any CUDA + TensorRT machine).
# usage: build_engines.sh MODEL OUT_DIR CALIB_MANIFEST
set -euo pipefail
model=${1:?model (anything adaptwin accepts)}; out=${2:?output folder}; calib=${3:?calibration manifest for int8}
name=$(basename "$model")
mkdir -p "$out"
adaptwin-export "$model" --out "$out/$name-fp16" --engine trt --precision fp16 --max-batch 4
adaptwin-export "$model" --out "$out/$name-int8" --engine trt --precision int8 --calib "$calib" --max-batch 4
ls -la "$out"/*/*.engine
