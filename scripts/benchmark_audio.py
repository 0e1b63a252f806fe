"""Peak memory of load_clip on a 30 s and a 10-minute 22.05 kHz file (each in a fresh process)."""

import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import resource, sys
import librosa, soundfile, soxr
from musicrl.music.audio import load_clip
load_clip(sys.argv[2])  # warm up: librosa's lazy imports and the resampler cost the same for every file
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
load_clip(sys.argv[1])
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
"""


def main() -> None:
    import numpy as np
    import soundfile

    with tempfile.TemporaryDirectory() as folder:
        warm = Path(folder) / "warm.wav"
        soundfile.write(warm, np.zeros(22050, np.float32) + 0.1, 22050)
        for seconds in (30, 600):
            path = Path(folder) / f"tone{seconds}.wav"
            t = np.arange(seconds * 22050) / 22050
            soundfile.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
            peak = float(subprocess.run([sys.executable, "-c", CHILD, str(path), str(warm)], capture_output=True, text=True,
                                        check=True).stdout.split()[-1])
            print(f"load_clip, {seconds:>3} s file: peak memory {peak:.0f} MB above the imports")


if __name__ == "__main__":
    main()
