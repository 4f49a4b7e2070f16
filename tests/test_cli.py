import subprocess
import sys

import pytest

from pyro_neurodyn import __version__
from pyro_neurodyn.cli import main


def test_info_and_version(capsys):
    assert main(["info"]) == 0
    assert f"pyro_neurodyn {__version__}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert __version__ in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: neurodyn" in capsys.readouterr().out


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "pyro_neurodyn.cli", "info"], capture_output=True, text=True, check=True)
    assert "torch" in result.stdout
