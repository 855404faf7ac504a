"""liveagent: a real-time live accompanist driven by reinforcement-learning policies.

Importing the package registers the gymnasium environment ``liveagent/Accompany-v0`` (gymnasium's
convention)::

    import gymnasium
    import liveagent

    env = gymnasium.make("liveagent/Accompany-v0")

The registration is lazy twice over. The entry point is a string, so the environment's module loads on
``gymnasium.make``. And gymnasium itself is not imported here: it costs 60-90 ms, which ``liveagent serve``
(which never uses it) would pay at every start. If gymnasium is already imported, the environment is
registered now; otherwise a hook on ``sys.meta_path`` registers it the moment gymnasium finishes importing,
then steps aside. Gymnasium 1.x loads no plugins through entry points; its ``module:id`` form,
``gymnasium.make("liveagent:liveagent/Accompany-v0")``, needs no ``import liveagent`` at all.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (4 ms); mypy knows the name
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any

__version__ = "0.1.0"

ENV_ID = "liveagent/Accompany-v0"
_ENTRY_POINT = "liveagent.env.accompaniment:AccompanimentEnv"


def register_envs() -> None:
    """Register ``liveagent/Accompany-v0`` with gymnasium (imports gymnasium; safe to call repeatedly).

    Self-contained on purpose: it may run from inside ``liveagent.env.registration``'s ``import gymnasium``.
    """
    import gymnasium

    if ENV_ID not in gymnasium.registry:  # gymnasium warns on a second registration
        gymnasium.register(id=ENV_ID, entry_point=_ENTRY_POINT)


class _RegisterAfterGymnasium:
    """A meta-path finder that only watches for ``gymnasium``: it lets the other finders locate it, wraps
    the loader so that :func:`register_envs` runs once the module has executed, and leaves ``sys.meta_path``.
    """

    liveagent_gymnasium_hook = True  # found again after importlib.reload(liveagent), which makes a new class

    def __init__(self) -> None:
        self._searching = False

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None, /
    ) -> ModuleSpec | None:
        if fullname != "gymnasium" or self._searching:
            return None
        self._searching = True  # a finder that asks the others in turn asks us: answer None then
        try:
            for finder in list(sys.meta_path):
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                        spec.loader = _RegisteringLoader(spec.loader, self)
                    return spec
            return None
        finally:
            self._searching = False


if TYPE_CHECKING:
    from importlib.abc import Loader as _Loader
else:
    _Loader = object  # importlib.abc costs 30 ms (importlib.resources): the type only


class _RegisteringLoader(_Loader):
    """Runs gymnasium's own loader, then restores it on the module and registers our environments."""

    def __init__(self, loader: Any, hook: _RegisterAfterGymnasium) -> None:
        self._loader = loader
        self._hook = hook

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, ...: the real loader's
        return getattr(self._loader, name)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        create: Any = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        if self._hook in sys.meta_path:
            sys.meta_path.remove(self._hook)
        register_envs()


def _register_when_gymnasium_loads() -> None:
    if "gymnasium" in sys.modules:
        register_envs()
    elif not any(getattr(finder, "liveagent_gymnasium_hook", False) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterGymnasium())


_register_when_gymnasium_loads()
