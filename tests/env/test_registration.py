"""Gymnasium's convention: ``import liveagent`` is enough for ``gymnasium.make("liveagent/Accompany-v0")``, in
either import order, without torch and without importing gymnasium for those who never use it (``serve``).

Each case runs in a fresh interpreter: the registration happens at import time, which this process has long
passed. Warnings are errors there, so a second registration (gymnasium warns on one) fails the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _fresh(code: str) -> dict[str, Any]:
    """Run ``code`` in a new interpreter (warnings are errors); it prints one JSON object."""
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


_MAKE_RESET_STEP = """
env = gymnasium.make("liveagent/Accompany-v0")
obs, info = env.reset(seed=0)
obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
out["entry_point"] = env.spec.entry_point
out["step"] = [float(reward), bool(terminated), bool(truncated)]
out["torch_after_step"] = "torch" in sys.modules
env.close()
"""


@pytest.mark.timeout(120)
def test_import_liveagent_then_gymnasium_make() -> None:
    out = _fresh(
        """
import json, sys
out = {}
import liveagent
out["gymnasium_after_import"] = "gymnasium" in sys.modules
out["torch_after_import"] = "torch" in sys.modules
import gymnasium
out["registered"] = "liveagent/Accompany-v0" in gymnasium.registry
"""
        + _MAKE_RESET_STEP
        + """
liveagent.register_envs()  # again: harmless, no warning (warnings are errors here)
import liveagent.env  # the old way still works alongside
print(json.dumps(out))
"""
    )
    assert out["gymnasium_after_import"] is False  # `serve` never pays for gymnasium
    assert out["torch_after_import"] is False
    assert out["registered"] is True
    assert out["entry_point"] == "liveagent.env.accompaniment:AccompanimentEnv"  # a string: loaded on make
    assert out["step"][1:] == [False, False]
    assert out["torch_after_step"] is False  # the env is numpy only


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "imports",
    [
        "import gymnasium\nimport liveagent",  # gymnasium first: registered at once
        "import liveagent\nimport gymnasium.spaces\nimport gymnasium",  # through a submodule of gymnasium
        "import liveagent.env\nimport gymnasium",  # the subpackage alone, as before
        "import liveagent, importlib\nimportlib.reload(liveagent)\nimport gymnasium",  # one hook
        "import gymnasium",  # and with gymnasium's own module:id form, no `import liveagent` at all
    ],
    ids=["gymnasium-first", "gymnasium-submodule", "liveagent.env", "reload", "module-colon-id"],
)
def test_every_import_order_registers_once(imports: str) -> None:
    env_id = "liveagent:liveagent/Accompany-v0" if imports == "import gymnasium" else "liveagent/Accompany-v0"
    out = _fresh(
        f"""
import json, sys
out = {{}}
{imports}
"""
        + _MAKE_RESET_STEP.replace('"liveagent/Accompany-v0"', repr(env_id))
        + """
out["hooks_left"] = [type(f).__name__ for f in sys.meta_path if "Gymnasium" in type(f).__name__]
out["loader"] = type(gymnasium.__spec__.loader).__name__
print(json.dumps(out))
"""
    )
    assert out["entry_point"] == "liveagent.env.accompaniment:AccompanimentEnv"
    assert out["torch_after_step"] is False
    assert out["hooks_left"] == []  # the import hook removed itself once gymnasium had loaded
    assert out["loader"] == "SourceFileLoader"  # gymnasium's own loader, restored


@pytest.mark.timeout(120)
def test_the_made_env_passes_check_env() -> None:
    """The env the registry builds with its default arguments (the shipped corpus), through gymnasium's
    checker (tests/env/test_env.py checks envs built by hand)."""
    out = _fresh(
        """
import json, sys
import liveagent, gymnasium
from gymnasium.utils.env_checker import check_env
env = gymnasium.make("liveagent/Accompany-v0")
check_env(env.unwrapped, skip_render_check=True)
print(json.dumps({"torch": "torch" in sys.modules}))
"""
    )
    assert out["torch"] is False
