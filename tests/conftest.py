"""The tests run on the CPU, also on a machine with a CUDA GPU: several compare SB3 with the
multi-seed path bit for bit, which holds on the CPU only, and CI has no GPU. The GPU is hidden
before torch starts; ``MUSICRL_TEST_GPU=1`` leaves it visible (the device trainer's tests then
train on it). ``make gpu-check`` checks the GPU path."""

import os

if os.environ.get("MUSICRL_TEST_GPU") != "1":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""


def interrupt_after_first_checkpoint(monkeypatch, train_run) -> None:
    """Run ``train_run()`` until just after its first checkpoint's evaluation (the second
    evaluation raises KeyboardInterrupt, as a Ctrl-C there would), then restore the evaluation."""
    import pytest

    from musicrl.runfiles import RunFolder

    evaluate, calls = RunFolder.evaluate, {"n": 0}

    def crash_at_the_second_evaluation(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(RunFolder, "evaluate", crash_at_the_second_evaluation)
    with pytest.raises(KeyboardInterrupt):
        train_run()
    monkeypatch.setattr(RunFolder, "evaluate", evaluate)
