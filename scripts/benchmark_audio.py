"""Peak memory of load_clip on a 30 s and a 10-minute 22.05 kHz file (each in a fresh process)."""

import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import resource, sys
import librosa, soundfile, soxr
from musicrl.music.audio import load_clip
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
load_clip(sys.argv[1])
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
"""


def main() -> None:
    import numpy as np
    import soundfile

    with tempfile.TemporaryDirectory() as folder:
        for seconds in (30, 600):
            path = Path(folder) / f"tone{seconds}.wav"
            t = np.arange(seconds * 22050) / 22050
            soundfile.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
            peak = float(subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True,
                                        check=True).stdout.split()[-1])
            print(f"load_clip, {seconds:>3} s file: peak memory {peak:.0f} MB above the imports")


if __name__ == "__main__":
    main()
