"""Seconds to load a long NWB recording with ``pyro_neurodyn.data.load_nwb``.

Writes (once, into a temporary folder) a simulated session of ``--minutes`` minutes with ``--units`` units
firing at ``--rate`` Hz (Poisson spike times, one observation interval per unit with a gap for a tenth of
the units), plus a 64-channel ``ElectricalSeries`` at 160 Hz; then times reading it binned at ``--bin``
seconds as one whole-session trial: the units table (counts) and the series (bin means), median of
``--repeats`` runs. The issue's target: a 1-hour, 200-unit file at 10 ms bins in under 10 s.

    python benchmarks/bench_nwb.py [--minutes 60] [--units 200] [--rate 10] [--bin 0.01] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from pynwb import NWBHDF5IO, NWBFile
from pynwb.ecephys import ElectricalSeries

from pyro_neurodyn.data import load_nwb


def write_session(path: Path, minutes: float, units: int, rate: float, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    duration = 60.0 * minutes
    nwbfile = NWBFile(session_description="benchmark", identifier="bench", session_start_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
    for unit in range(units):
        spikes = np.sort(rng.uniform(0.0, duration, rng.poisson(rate * duration)))
        gap = [[0.0, duration / 3], [duration / 2, duration]] if unit % 10 == 0 else [[0.0, duration]]
        nwbfile.add_unit(spike_times=spikes, obs_intervals=gap)
    device = nwbfile.create_device("probe")
    group = nwbfile.create_electrode_group("shank", description="shank", location="ctx", device=device)
    for _ in range(64):
        nwbfile.add_electrode(group=group, location="ctx")
    region = nwbfile.create_electrode_table_region(list(range(64)), "all")
    samples = rng.normal(size=(int(duration * 160), 64)).astype(np.float32)
    nwbfile.add_acquisition(ElectricalSeries(name="EEG", data=samples, electrodes=region, rate=160.0, starting_time=0.0))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--bin", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "session.nwb"
        start = time.perf_counter()
        write_session(path, args.minutes, args.units, args.rate)
        print(f"wrote {args.minutes:g} min, {args.units} units at {args.rate:g} Hz + 64-channel EEG at 160 Hz "
              f"({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - start:.1f} s")  # fmt: skip
        for name, options in (("units (counts)", {}), ("EEG series (bin means)", {"series": "EEG"})):
            seconds = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                rec = load_nwb(path, args.bin, **options)
                seconds.append(time.perf_counter() - start)
            print(f"{name:>24}: y {tuple(rec.y.shape)}, {rec.mask.float().mean().item():.3f} observed, "
                  f"median {statistics.median(seconds):.2f} s over {args.repeats} runs")  # fmt: skip


if __name__ == "__main__":
    main()
