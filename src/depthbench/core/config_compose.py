"""Command-line overrides checked before Hydra runs: a typo gets one line with "did you mean".

Hydra reports an unknown key (``trainer.max_epoch=3``) as a multi-line "Could not override ...
use +trainer.max_epoch" (the ``+`` then fails inside the Trainer) and an unknown group option
(``model=resnt``) as a list plus the config search path. :func:`check_overrides` composes the
command's config once, as Hydra is about to, and turns those two failures into a
:class:`~depthbench.errors.ConfigError` that names the closest valid keys or options. Any other
outcome is left to Hydra, which composes again and reports (or runs) as usual.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf

from depthbench.core.overrides import override_key, override_value
from depthbench.errors import ConfigError, close_matches

# folders of conf/ that are no config group of train.py or eval.py: conf/lesson holds the claims
# that `depthbench lesson` reads (depthbench.lesson.claims)
NOT_GROUPS = ("lesson",)
# flags after which Hydra does not run the task: nothing to check
_NO_RUN = {"-h", "--help", "--hydra-help", "--info", "-i", "--shell-completion", "-sc",
           "--version", "--experimental-rerun"}  # fmt: skip
# flags that take a value
_WITH_VALUE = {"--config-dir", "-cd", "--config-name", "-cn", "--config-path", "-cp",
               "--cfg", "-c", "--package", "-p"}  # fmt: skip


def _split_args(args: Sequence[str]) -> tuple[list[str], dict[str, str]] | None:
    """Hydra's command line -> (overrides, {flag: value}); None when it will not run a task."""
    overrides: list[str] = []
    flags: dict[str, str] = {}
    items = iter(args)
    for arg in items:
        name, _, inline = arg.partition("=") if arg.startswith("-") else (arg, "", "")
        if name in _NO_RUN:
            return None
        if name in _WITH_VALUE:
            flags[name] = inline or next(items, "")
        elif not arg.startswith("-"):
            overrides.append(arg)
    return overrides, flags


def _one_value_each(overrides: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """A sweep (``model.depth=4,16``) becomes its first value; one that cannot be enumerated
    (``interval(0, 1)``, for a sweeper) is left out: composing checks keys, not every value.
    Also returns every value of each sweep, by key, to check the group options among them."""
    out, sweeps = [], {}
    for override in OverridesParser.create().parse_overrides(overrides):
        if not override.is_sweep_override():
            out.append(override.input_line)
            continue
        try:
            values = list(override.sweep_string_iterator())
        except HydraException:
            continue
        out.append(f"{override.get_key_element()}={values[0]}")
        sweeps[override.get_key_element()] = values
    return out, sweeps


def compose_config(
    config_dirs: Sequence[str],
    config_name: str,
    overrides: Sequence[str],
    sweeps: dict[str, list[str]] | None = None,
    with_hydra: bool = False,
) -> DictConfig:
    """``<config_dirs[0]>/<config_name>.yaml`` with ``overrides`` as Hydra composes it for a
    run (later folders join the search path; the ``hydra`` node too when ``with_hydra``): the
    one way depthbench, its tests and the notebook compose a config. Each swept value of a
    config group in ``sweeps`` must be one of its options."""
    GlobalHydra.instance().clear()
    extra = [f"hydra.searchpath=[{','.join('file://' + d for d in config_dirs[1:])}]"]
    try:
        with initialize_config_dir(config_dir=config_dirs[0], version_base="1.3"):
            cfg = compose(config_name, overrides=[*overrides, *extra[: len(config_dirs) > 1]],
                          return_hydra_config=with_hydra)  # fmt: skip
            loader = GlobalHydra.instance().config_loader()
            for key, values in (sweeps or {}).items():
                group = override_key(key)
                options = loader.get_group_options(group)
                unknown = [v for v in values if options and v not in options]
                if unknown:
                    raise MissingConfigException("", f"{group}/{unknown[0]}", options)
            return cfg
    finally:
        GlobalHydra.instance().clear()


def unknown_key_message(cfg: DictConfig, key: str) -> str:
    """One line for an override of ``key`` that is not in ``cfg``: the closest keys at the
    first level where the path leaves the config, or that level's keys."""
    parts = override_key(key).split(".")
    node, prefix = cfg, ""
    for i, part in enumerate(parts):
        if isinstance(node, DictConfig) and part in node:
            node, prefix = node[part], f"{prefix}{part}."
            continue
        siblings = list(node.keys()) if isinstance(node, DictConfig) else []
        matches = close_matches(part, [str(s) for s in siblings])
        rest = "." + ".".join(parts[i + 1 :]) if parts[i + 1 :] else ""
        if matches:
            best, *others = (f"{prefix}{m}{rest}" for m in matches)
            also = f" (also close: {', '.join(others)})" if others else ""
            return f"{key} is not a config key; did you mean {best}?{also}"
        where = prefix.rstrip(".") or "the config"
        shown = ", ".join(str(s) for s in siblings[:12]) + (", ..." if len(siblings) > 12 else "")
        return (
            f"{key} is not a config key; the keys of {where}: {shown} "
            f"(to add a new key on purpose: +{key}=VALUE)"
        )
    return f"{key} cannot be overridden here"


def unknown_option_message(error: MissingConfigException) -> str | None:
    """One line for ``group=option`` naming a config file that does not exist, or None."""
    missing = error.missing_cfg_file or ""
    if "/" not in missing or not error.options:
        return None
    group, option = missing.rsplit("/", 1)
    matches = close_matches(option, error.options)
    guess = f"did you mean {group}={matches[0]}? " if matches else ""
    return f"{group}={option} is not an option; {guess}options: {', '.join(error.options)}"


def compose_command(
    config_dir: str, config_name: str, args: Sequence[str], with_hydra: bool = False
) -> DictConfig | None:
    """The config a command line (Hydra's syntax, flags included) composes to, each sweep at its
    first value (with its ``hydra`` node when ``with_hydra``); None for a command that runs no
    task (``--help``) or one this check cannot compose as Hydra would (another primary config
    folder). Hydra's errors propagate."""
    split = _split_args(args)
    if split is None:
        return None
    overrides, flags = split
    if flags.get("--config-path") or flags.get("-cp"):
        return None  # another primary config folder: Hydra's to compose
    config_dirs = [config_dir]
    if flags.get("--config-dir") or flags.get("-cd"):
        if any(override_key(o).startswith("hydra.searchpath") for o in overrides):
            return None  # both extend the search path: Hydra merges them, this check would not
        config_dirs.append(str(Path(flags.get("--config-dir") or flags["-cd"]).resolve()))
    config_name = flags.get("--config-name") or flags.get("-cn") or config_name
    overrides, sweeps = _one_value_each(overrides)
    return compose_config(config_dirs, config_name, overrides, sweeps, with_hydra)


def trainer_arguments() -> set[str]:
    """The names of Lightning ``Trainer``'s arguments (what the ``trainer`` group passes on).

    Read from the signature in Lightning's source file without importing Lightning (seconds
    of start-up for a typo); imported only when that file cannot be read so."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec("lightning")  # a submodule's spec would import Lightning
    found = spec is not None and spec.origin is not None
    source = Path(spec.origin).parent / "pytorch/trainer/trainer.py" if found else None
    if source is not None and source.is_file():
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == "Trainer":
                init = next((f for f in node.body if getattr(f, "name", "") == "__init__"), None)
                if isinstance(init, ast.FunctionDef):
                    args = init.args
                    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
                    return set(names) - {"self"}
    import inspect

    from lightning.pytorch import Trainer

    return set(inspect.signature(Trainer.__init__).parameters) - {"self"}


def _addable(key: str, config_name: str) -> bool:
    """Whether an override of ``key``, absent from the config, is meant to be added: a Trainer
    argument under ``trainer.``, or (eval) a key of the checkpoint's data under ``data.``."""
    parts = override_key(key).split(".")
    if len(parts) == 2 and parts[0] == "trainer":
        return parts[1] in trainer_arguments()
    return config_name == "eval" and len(parts) >= 2 and parts[0] == "data"


def config_groups_help() -> str:
    """The ``group: option, ...`` lines of ``train.py --help`` (``conf/hydra/default.yaml``'s
    help template calls this as ``${depthbench_config_groups:}``): Hydra's own
    ``$APP_CONFIG_GROUPS`` list without ``NOT_GROUPS``, which Hydra offers as groups because
    they are folders of the config search path (Hydra cannot leave a folder out of its list)."""
    return "".join(
        f"{group}: {', '.join(options)}\n"
        for group, options in config_groups(lambda g: not _is_hydra_group(g)).items()
    )


def _is_hydra_group(group: str) -> bool:
    return group == "hydra" or group.startswith("hydra/")


def config_groups(keep) -> dict[str, list[str]]:
    """``{group: sorted options}`` of the config search path for each group ``keep(group)``
    accepts, ``NOT_GROUPS`` left out: Hydra's ``list_all_config_groups`` read from the config
    sources themselves (``ConfigSource.list``). Hydra's own loader copies its whole repository
    for every group it asks about: 200 copies, seconds, for one ``--help``."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType

    sources = GlobalHydra.instance().config_loader().get_sources()  # set while Hydra runs

    def listed(group: str, kind: ObjectType) -> list[str]:
        names = {n for s in sources if s.is_group(group) for n in s.list(group, kind)}
        return sorted(n.removesuffix(".yaml") for n in names)

    found: dict[str, list[str]] = {}

    def walk(parent: str) -> None:
        for name in listed(parent, ObjectType.GROUP):
            group = f"{parent}/{name}" if parent else name
            if group in NOT_GROUPS:
                continue
            options = listed(group, ObjectType.CONFIG)
            if options and keep(group):
                found[group] = options
            walk(group)

    walk("")
    return dict(sorted(found.items()))


def app_help(config_dir: str, config_name: str, args: Sequence[str]) -> str | None:
    """The text of ``--help`` (the config's ``hydra.help.template``), rendered as Hydra does,
    or None to leave it to Hydra (other flags, or a template with ``$FLAGS_HELP``). Hydra's
    own rendering lists every group twice through its copying loader (seconds)."""
    import string

    from hydra.core.hydra_config import HydraConfig

    flags = {a.partition("=")[0] for a in args if a.startswith("-")}
    if not flags & {"--help", "-h"} or flags - {"--help", "-h", "--resolve", "-r"}:
        return None
    overrides = [a for a in args if not a.startswith("-")]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
            cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)
            template = str(cfg.hydra.help.template)  # resolves ${depthbench_config_groups:}
            if "$FLAGS_HELP" in template:
                return None

            def groups(keep) -> str:
                return "".join(f"{g}: {', '.join(o)}\n" for g, o in config_groups(keep).items())

            values = {"CONFIG": "", "APP_CONFIG_GROUPS": "", "HYDRA_CONFIG_GROUPS": ""}
            if "CONFIG_GROUPS" in template:
                values["APP_CONFIG_GROUPS"] = groups(lambda g: not _is_hydra_group(g))
                values["HYDRA_CONFIG_GROUPS"] = groups(_is_hydra_group)
            job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
            values["CONFIG"] = OmegaConf.to_yaml(job, resolve=bool(flags & {"--resolve", "-r"}))
            return string.Template(template).substitute(values)
    except HydraException:
        return None  # Hydra reports it in its own words
    finally:
        GlobalHydra.instance().clear()


def _lesson_command(arg: str, value: str, config_dir: str) -> str:
    """``depthbench lesson --only NAMES`` for ``lesson=NAMES``: the claims as given when each is
    one, else the closest claim, else ``NAME`` (a claim is named after its file in lesson/)."""
    names = sorted(p.stem for p in (Path(config_dir) / "lesson").glob("*.yaml"))
    given = [v for v in value.split(",") if v] if "." not in override_key(arg) else []
    if given and all(v in names for v in given):
        return f"depthbench lesson --only {','.join(given)}"
    close = close_matches(given[0], names) if given else []
    return f"depthbench lesson --only {close[0] if close else 'NAME'}"


def _refuse_foreign_groups(config_dir: str, config_name: str, overrides: Sequence[str]) -> None:
    """Groups that this entry point would silently ignore are refused, naming the right one."""
    from depthbench.core.config_values import FROM_CHECKPOINT, from_checkpoint_message

    for arg in overrides:
        value = override_value(arg) or ""
        root = override_key(arg).split(".")[0]
        if root in NOT_GROUPS:
            raise ConfigError(
                f"{arg}: conf/lesson/ holds the lesson's claims, which {config_name}.py does not "
                f"read; run a claim with {_lesson_command(arg, value, config_dir)} "
                "(depthbench lesson --help lists the claims)"
            )
        if config_name == "eval" and root in FROM_CHECKPOINT:
            raise ConfigError(from_checkpoint_message(root, arg.lstrip("+~")))


def hydra_config_resolvable(args: Sequence[str]) -> list[str]:
    """``--cfg hydra --resolve`` as ``--cfg all --package hydra --resolve``: Hydra resolves its
    ``--cfg hydra`` node without the job's keys it names (``paths.log_dir``) and fails with a
    traceback; selected from the whole config, the same node resolves."""
    args = list(args)
    flags = {a.partition("=")[0] for a in args if a.startswith("-")}
    if not flags & {"--resolve", "-r"} or flags & {"--package", "-p"}:
        return args
    for i, arg in enumerate(args):
        if arg in ("--cfg", "-c") and args[i + 1 : i + 2] == ["hydra"]:
            return [*args[:i], arg, "all", "--package", "hydra", *args[i + 2 :]]
        if arg in ("--cfg=hydra", "-c=hydra"):
            return [*args[:i], "--cfg=all", "--package", "hydra", *args[i + 1 :]]
    return args


def check_overrides(config_dir: str, config_name: str, args: Sequence[str]) -> list[str]:
    """Compose ``config_name`` with the command line ``args`` (Hydra's syntax); raise a one-line
    ConfigError for an unknown key or group option. Everything else is Hydra's to report.

    Returns the command line to run: a plain ``trainer.KEY=VALUE`` of a Lightning Trainer
    argument that the config does not set gets Hydra's ``+`` (the ``trainer`` group passes
    Trainer arguments), as does eval's ``data.KEY=VALUE`` (a key of the checkpoint's data).
    """
    args = hydra_config_resolvable(args)
    split = _split_args(args)
    if not args or split is None:  # the defaults alone, or no task (--help): nothing to check
        return args
    _refuse_foreign_groups(config_dir, config_name, split[0])
    for _ in range(len(args) + 1):  # each round adds one `+`
        try:
            cfg = compose_command(config_dir, config_name, args, with_hydra=True)
        except MissingConfigException as e:
            message = unknown_option_message(e)
            if message:
                raise ConfigError(message) from None
        except ConfigCompositionException as e:
            found = re.search(r"Could not override '([^']+)'", str(e))
            if not found or "not in struct" not in str(e.__cause__ or ""):
                return args
            key = found.group(1)
            given = re.compile(rf"{re.escape(key)}=")
            if _addable(key, config_name):
                args = [f"+{a}" if given.match(a) else a for a in args]
                continue
            others = [a for a in args if not re.match(rf"[+~]*{re.escape(key)}=", a)]
            try:
                base = compose_command(config_dir, config_name, others) or OmegaConf.create()
            except HydraException:
                base = OmegaConf.create()
            raise ConfigError(unknown_key_message(base, key)) from None
        except HydraException:
            pass  # Hydra composes again and reports it in its own words
        else:
            if not {"-m", "--multirun"} & set(args):
                check_values(config_name, cfg)
        return args
    return args


def check_values(config_name: str, cfg: DictConfig | None) -> None:
    """A single run's values checked now (``validation``), before Hydra makes its run folder:
    a bad value is one line and leaves no folder. A multirun's jobs are checked as they run,
    each recorded by the sweep (``launch.sweeps``); eval's values depend on its checkpoint."""
    from hydra.types import RunMode

    if cfg is None or config_name != "train" or "hydra" not in cfg:
        return
    if cfg.hydra.get("mode") == RunMode.MULTIRUN:
        return
    from depthbench.core.config_values import validate_train_values

    validate_train_values(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))
