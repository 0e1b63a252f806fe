"""The tests run on the CPU, also on a machine with a CUDA GPU: several compare SB3 with the
multi-seed path bit for bit, which holds on the CPU only, and CI has no GPU. The GPU is hidden
before torch starts; ``MUSICRL_TEST_GPU=1`` leaves it visible (the device trainer's tests then
train on it). ``make gpu-check`` checks the GPU path."""

import os

if os.environ.get("MUSICRL_TEST_GPU") != "1":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
