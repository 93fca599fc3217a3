"""Model sources outside featviz: torchvision, timm, your own Python factory, local files.

Registered names:
- ``torchvision/<arch>``: any ``torchvision.models.list_models()`` architecture, with
  torchvision's pretrained weights (``model.weights``), random weights (``weights: none``)
  or a local state dict (``model.checkpoint``);
- ``timm/<name>``: ``timm.create_model`` (needs the ``timm`` extra);
- ``python`` (``model.python: "package.module:factory"``): your own ``nn.Module`` factory;
- ``torchscript``: a file saved with ``torch.jit.save``, used as is.

Every local file goes through ``load_checkpoint`` and every state dict into a module
through ``apply_state_dict``, so checkpoint errors read the same whatever the source.
"""
from __future__ import annotations

import contextlib
import difflib
import http.client
import importlib
import json
import os
import pickle
import re
import sys
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import torch
import torch.nn as nn

from ..errors import ModelError
from ._registry import ModelInfo, register_model, register_source
from .imagenet import imagenet_classes

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ModelSpec

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# Keys under which training scripts commonly nest the weights in a checkpoint dict.
_WRAPPER_KEYS: tuple[str, ...] = ("state_dict", "model_state_dict", "model")
# Prefixes added by nn.DataParallel / DistributedDataParallel and by torch.compile.
_KEY_PREFIXES: tuple[str, ...] = ("module.", "_orig_mod.")
# What a factory's ``featviz_info`` dict (or a TorchScript ``featviz_info.json``) may set.
INFO_FIELDS: tuple[str, ...] = ("input_size", "mean", "std", "value_range", "class_names")
_TRUST_HINT = "set model.trust_checkpoint: true only if you trust this file (loading it runs code inside it)"


# ---------------------------------------------------------------- small helpers


def _one_line(exc: BaseException, limit: int = 240) -> str:
    """``Type: message`` of an exception on one line, shortened to ``limit`` characters."""
    text = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _listing(names: list[str], n: int = 5) -> str:
    """``a, b, c (+N more)`` for error messages."""
    shown = ", ".join(names[:n])
    return f"{shown} (+{len(names) - n} more)" if len(names) > n else shown


def _is_none(value: str | None) -> bool:
    """True for the spec value that asks for random weights (``weights: none``)."""
    return value is not None and value.strip().lower() == "none"


# ---------------------------------------------------------------- local files


def load_checkpoint(path: str | Path, *, trust: bool) -> "dict[str, torch.Tensor] | torch.jit.ScriptModule":
    """Read a local weights file: a state dict (unwrapped, prefixes stripped) or a TorchScript module.

    Without ``trust`` only tensors and plain containers are unpickled (``weights_only=True``).
    """
    p = _check_file(path)
    if _is_torchscript(p):
        return _load_torchscript(p)[0]
    try:
        obj = torch.load(p, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as e:
        # A refused class shows as "Unsupported global: GLOBAL pkg.Class"; random bytes fail otherwise.
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        if not trust and refused:
            raise ModelError(
                f"model.checkpoint: {p} holds Python objects besides tensors ({refused.group(1)}) and was not "
                f"loaded; save model.state_dict() instead, or {_TRUST_HINT}."
            ) from None
        raise _corrupt(p, e) from None
    except OSError as e:  # e.g. no permission to read
        raise ModelError(
            f"model.checkpoint: {p} cannot be read ({_one_line(e)}); check the file's permissions."
        ) from None
    except (ImportError, AttributeError) as e:  # trusted pickle naming a class that is not importable
        raise ModelError(
            f"model.checkpoint: {p} needs code that cannot be imported ({_one_line(e)}); make the module that "
            "defined its classes importable, or save model.state_dict() instead."
        ) from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for damaged files
        raise _corrupt(p, e) from None
    return _state_dict_from(obj, p)


def _check_file(path: str | Path) -> Path:
    """The path as a ``Path``; ``ModelError`` when it is missing or not a regular file."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise ModelError(f"model.checkpoint: {p} is a directory; give the path of the weights file inside it.")
    if not p.is_file():
        raise ModelError(
            f"model.checkpoint: {p}: no such file; check the path (relative paths start at {os.getcwd()})."
        )
    return p


def _corrupt(p: Path, exc: BaseException) -> ModelError:
    """The error for a file torch cannot parse."""
    return ModelError(
        f"model.checkpoint: {p} cannot be read; it is truncated, corrupt or not a PyTorch file "
        f"({_one_line(exc, 120)}). Copy or download it again, or save it with torch.save(model.state_dict(), path)."
    )


def _is_torchscript(p: Path) -> bool:
    """True for a ``torch.jit.save`` archive: a zip with ``constants.pkl`` or a ``code/`` folder."""
    try:
        if not zipfile.is_zipfile(p):
            return False
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def _load_torchscript(p: Path) -> "tuple[torch.jit.ScriptModule, dict[str, Any] | None]":
    """Load a TorchScript file on the CPU; also its ``featviz_info.json`` extra file when present."""
    extra = {"featviz_info.json": ""}
    try:
        with warnings.catch_warnings():  # torch.jit.load is deprecated upstream but still the way to read these files
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(p), map_location="cpu", _extra_files=extra)
    except Exception as e:  # noqa: BLE001
        raise _corrupt(p, e) from None
    raw = extra["featviz_info.json"]
    if not raw:
        return module, None
    try:
        return module, json.loads(raw)
    except ValueError as e:
        raise ModelError(f"model.checkpoint: {p}: its featviz_info.json is not valid JSON ({_one_line(e)}).") from None


def _state_dict_from(obj: Any, p: Path) -> dict[str, torch.Tensor]:
    """Unwrap ``{"state_dict": ...}``-style checkpoints and whole pickled modules; strip key prefixes."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, nn.Module):
                inner = inner.state_dict()
            if isinstance(inner, dict) and inner:
                obj = inner
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        found = _listing([str(k) for k in obj]) if isinstance(obj, dict) else type(obj).__name__
        raise ModelError(
            f"model.checkpoint: {p} does not hold a state dict (found: {found or 'nothing'}); "
            "save it with torch.save(model.state_dict(), path)."
        )
    return _strip_prefixes(obj)


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove a ``module.``/``_orig_mod.`` prefix shared by every key (DataParallel, torch.compile)."""
    for prefix in _KEY_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def apply_state_dict(module: nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Load ``state`` into ``module`` strictly; mismatches raise ``ModelError`` naming the keys and the file."""
    own = module.state_dict()
    shapes = [
        f"{k} {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if shapes:
        raise ModelError(
            f"model.checkpoint: {path} does not fit the model: shapes differ for {_listing(shapes)}; "
            "set model.kwargs (e.g. num_classes) to match the network the file was saved from."
        )
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise ModelError(f"model.checkpoint: {path} does not fit the model ({_one_line(e)}).") from None
    problems = []
    if result.missing_keys:
        problems.append(f"missing keys {_listing(list(result.missing_keys))}")
    if result.unexpected_keys:
        problems.append(f"unexpected keys {_listing(list(result.unexpected_keys))}")
    if problems:
        raise ModelError(
            f"model.checkpoint: {path} does not fit the model: {'; '.join(problems)}. "
            "Check that model.name/model.python and model.kwargs build the network the file was saved from."
        )


def load_checkpoint_into(module: nn.Module, path: str | Path, *, trust: bool) -> None:
    """Read a state dict file and load it strictly into ``module`` (a TorchScript file is refused)."""
    state = load_checkpoint(path, trust=trust)
    if not isinstance(state, dict):
        raise ModelError(
            f"model.checkpoint: {path} is a TorchScript file, not a state dict; "
            "set model.name: torchscript (and no model.python) to use it as it is."
        )
    apply_state_dict(module, state, path)


@register_model("torchscript")
def build_torchscript(spec: "ModelSpec") -> tuple[nn.Module, ModelInfo]:
    """``model.name: torchscript``: the ``model.checkpoint`` TorchScript file, used as it is."""
    if not spec.checkpoint:
        raise ModelError(
            "model.checkpoint: required with model.name: torchscript; give a file saved with torch.jit.save."
        )
    p = _check_file(spec.checkpoint)
    if not _is_torchscript(p):
        load_checkpoint(p, trust=spec.trust_checkpoint)  # a damaged file gets its own message
        raise ModelError(
            f"model.checkpoint: {p} is a state dict, not TorchScript; name its architecture in model.name "
            "(e.g. torchvision/resnet50) or model.python instead of torchscript."
        )
    module, meta = _load_torchscript(p)
    fields = info_fields(meta, f"model.checkpoint: {p}: featviz_info.json") if meta is not None else {}
    # Python forward hooks on the submodules of a scripted model do not fire: note it for the engine.
    info = ModelInfo(name="torchscript", weights=str(p), source="torchscript", extra={"scripted": True}, **fields)
    return module, info


# ---------------------------------------------------------------- model metadata as data


def info_fields(data: Any, where: str) -> dict[str, Any]:
    """Validate a ``featviz_info`` mapping into ``ModelInfo`` keyword arguments."""
    if not isinstance(data, dict):
        raise ModelError(f"{where}: featviz_info must be a dict with keys {', '.join(INFO_FIELDS)}.")
    unknown = [str(k) for k in data if k not in INFO_FIELDS]
    if unknown:
        raise ModelError(
            f"{where}: featviz_info has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(INFO_FIELDS)}."
        )
    out: dict[str, Any] = {}
    for key, value in data.items():
        out[key] = _info_value(key, value, f"{where}: featviz_info[{key!r}]")
    return out


def _info_value(key: str, value: Any, where: str) -> Any:
    """One ``featviz_info`` value, checked and converted to the ``ModelInfo`` field type."""
    def numbers(n: int) -> tuple[float, ...]:
        ok = isinstance(value, (list, tuple)) and len(value) == n and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        )
        if not ok:
            raise ModelError(f"{where} must be {n} numbers, got {value!r}.")
        return tuple(float(v) for v in value)

    if key == "input_size":
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ModelError(f"{where} must be a positive integer (pixels), got {value!r}.")
        return value
    if key in ("mean", "std"):
        return numbers(3)
    if key == "value_range":
        low, high = numbers(2)
        if low >= high:
            raise ModelError(f"{where} must be [low, high] with low < high, got {value!r}.")
        return (low, high)
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ModelError(f"{where} must be a list of strings, got {type(value).__name__}.")
    return tuple(value)


# ---------------------------------------------------------------- torchvision

# googlenet and inception_v3 take ``transform_input``: when True, forward() re-maps an
# ImageNet-normalized input to the (x - 0.5) / 0.5 scale the ported TF weights expect.
# featviz does all normalization itself from ModelInfo (data, not code), so the flag stays
# False and the pretrained ModelInfo carries mean = std = 0.5 instead, which is exactly
# equivalent. Aux heads are dropped (they only matter in training), and torchvision's slow
# scipy truncated-normal init is skipped for random weights (init_weights=False).
_TRANSFORM_INPUT_ARCHS = frozenset({"googlenet", "inception_v3", "quantized_googlenet", "quantized_inception_v3"})
_TF_MEAN_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)


def _check_arch(arch: str) -> None:
    """``ModelError`` with close matches when torchvision has no architecture ``arch``."""
    from torchvision.models import list_models

    known = list_models()
    if arch in known:
        return
    close = difflib.get_close_matches(arch.lower(), known, n=4, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else " See torchvision.models.list_models() for the names."
    raise ModelError(f"model.name: torchvision has no architecture {arch!r}.{hint}")


def resolve_torchvision_weights(arch: str, name: str | None) -> Any:
    """The torchvision weights enum member for ``name`` (None/DEFAULT: the default), or None for ``none``."""
    if _is_none(name):
        return None
    from torchvision.models import get_model_weights

    try:
        enum = get_model_weights(arch)
    except (KeyError, ValueError):
        raise ModelError(
            f"model.weights: torchvision/{arch} has no pretrained weights; set weights: none or give model.checkpoint."
        ) from None
    wanted = (name or "DEFAULT").strip()
    wanted = wanted.removeprefix(f"{enum.__name__}.")
    for candidate in (wanted, wanted.upper()):
        if candidate in enum.__members__:
            return enum[candidate]
    valid = list(enum.__members__) + ["none"]
    close = difflib.get_close_matches(wanted.upper(), valid, n=1)
    hint = f" Did you mean {close[0]}?" if close else ""
    raise ModelError(
        f"model.weights: {name!r} is not a weights name of torchvision/{arch}.{hint} Valid: {', '.join(valid)}."
    )


def _torchvision_kwargs(arch: str, user: dict[str, Any]) -> dict[str, Any]:
    """Constructor kwargs: the user's, plus the flags googlenet/inception_v3 need (see comment above)."""
    kwargs = dict(user)
    if arch in _TRANSFORM_INPUT_ARCHS:
        if kwargs.get("transform_input", False):
            raise ModelError(
                f"model.kwargs.transform_input: must be false for torchvision/{arch}; featviz normalizes the input "
                "itself (set model.mean/model.std instead)."
            )
        kwargs["transform_input"] = False
        kwargs.setdefault("aux_logits", False)
        kwargs.setdefault("init_weights", False)
    return kwargs


def _build_torchvision(arch: str, weights: Any, kwargs: dict[str, Any]) -> nn.Module:
    """``torchvision.models.get_model``; download, hash, load and kwargs failures become ``ModelError``."""
    from torchvision.models import get_model

    if weights is not None:
        kwargs = {"progress": sys.stderr.isatty(), **kwargs}
    label = f"torchvision/{arch}" + (f" with weights {weights.name}" if weights is not None else "")
    try:
        return get_model(arch, weights=weights, **kwargs)
    except (OSError, http.client.HTTPException) as e:
        if weights is None:
            raise ModelError(f"model.name: cannot build {label} ({_one_line(e)}).") from None
        raise ModelError(
            f"model.weights: the {weights.name} weights of torchvision/{arch} could not be downloaded "
            f"({_one_line(e, 160)}); check the internet connection, or set 'weights: none' for random weights, "
            "or 'checkpoint: <file>' for a local copy of the weights."
        ) from None
    except RuntimeError as e:
        if "invalid hash" in str(e):
            raise ModelError(
                f"model.weights: the downloaded {weights.name} file of torchvision/{arch} is corrupt; delete it "
                f"from {Path(torch.hub.get_dir()) / 'checkpoints'} and run again."
            ) from None
        raise ModelError(f"model.weights: cannot load {label} ({_one_line(e)}).") from None
    except (TypeError, ValueError) as e:
        raise ModelError(
            f"model.kwargs: torchvision/{arch} rejected {kwargs!r} ({_one_line(e)}); fix or remove model.kwargs."
        ) from None


def _default_categories(arch: str, kwargs: dict[str, Any]) -> tuple[str, ...] | None:
    """Class names of the arch's default weights (metadata in code) when the output count matches."""
    from torchvision.models import get_model_weights

    try:
        categories = get_model_weights(arch).DEFAULT.meta.get("categories")
    except (KeyError, ValueError, AttributeError):
        return None
    if not categories or kwargs.get("num_classes", len(categories)) != len(categories):
        return None
    return tuple(categories)


def _torchvision_random_info(arch: str, kwargs: dict[str, Any], weights: str) -> ModelInfo:
    """ModelInfo for random or checkpoint weights: ImageNet preprocessing, the arch's native size."""
    size = kwargs.get("image_size") or (299 if "inception_v3" in arch else 224)
    return ModelInfo(
        name=f"torchvision/{arch}",
        input_size=int(size),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        class_names=_default_categories(arch, kwargs),
        weights=weights,
        source="torchvision",
    )


def _torchvision_weights_info(arch: str, weights: Any) -> ModelInfo:
    """ModelInfo read from a weights enum member: its preset's mean/std/crop size and its categories."""
    preset = weights.transforms()
    mean = tuple(float(v) for v in getattr(preset, "mean", IMAGENET_MEAN))
    std = tuple(float(v) for v in getattr(preset, "std", IMAGENET_STD))
    if arch in _TRANSFORM_INPUT_ARCHS:  # transform_input folded into the normalization, see above
        mean, std = _TF_MEAN_STD, _TF_MEAN_STD
    crop = getattr(preset, "crop_size", None) or [299 if "inception_v3" in arch else 224]
    size = crop[0] if isinstance(crop, (list, tuple)) else crop
    categories = weights.meta.get("categories")
    return ModelInfo(
        name=f"torchvision/{arch}",
        input_size=int(size),
        mean=mean,  # type: ignore[arg-type]
        std=std,  # type: ignore[arg-type]
        class_names=tuple(categories) if categories else None,
        weights=weights.name,
        source="torchvision",
    )


@register_source("torchvision")
def build_torchvision(arch: str, spec: "ModelSpec") -> tuple[nn.Module, ModelInfo]:
    """``torchvision/<arch>``: pretrained (``model.weights``), random (``weights: none``) or a local state dict."""
    _check_arch(arch)
    kwargs = _torchvision_kwargs(arch, spec.kwargs)
    if spec.checkpoint:
        if spec.weights is not None and not _is_none(spec.weights):
            raise ModelError("model.weights: give either model.weights or model.checkpoint, not both.")
        module = _build_torchvision(arch, None, kwargs)
        load_checkpoint_into(module, spec.checkpoint, trust=spec.trust_checkpoint)
        return module, _torchvision_random_info(arch, kwargs, weights=str(spec.checkpoint))
    weights = resolve_torchvision_weights(arch, spec.weights)
    module = _build_torchvision(arch, weights, kwargs)
    if weights is None:
        return module, _torchvision_random_info(arch, kwargs, weights="none")
    return module, _torchvision_weights_info(arch, weights)


# ---------------------------------------------------------------- your own Python factory


@contextlib.contextmanager
def _cwd_on_path() -> Iterator[None]:
    """Put the current directory first on ``sys.path`` for the duration (a user's local module)."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _split_target(target: str) -> tuple[str, str]:
    """``"package.module:factory"`` -> ``("package.module", "factory")``; ``ModelError`` if malformed."""
    mod, sep, attr = target.strip().partition(":")
    valid = sep and all(part.isidentifier() for part in mod.split(".")) and all(
        part.isidentifier() for part in attr.split(".")
    )
    if not valid:
        raise ModelError(
            f"model.python: {target!r} is not 'package.module:factory'; write e.g. 'mymodels:build_net' "
            "for build_net() in mymodels.py in the current directory."
        )
    return mod, attr


def _import_module(mod: str) -> Any:
    """Import ``mod`` with the current directory on the path; import failures become ``ModelError``."""
    with _cwd_on_path():
        importlib.invalidate_caches()
        try:
            return importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name and (mod == e.name or mod.startswith(e.name + ".")):
                raise ModelError(
                    f"model.python: cannot find module {mod!r}; run featviz from the directory that holds it "
                    "or add that directory to PYTHONPATH."
                ) from None
            raise ModelError(
                f"model.python: importing {mod!r} failed ({_one_line(e)}); install what it imports."
            ) from None
        except Exception as e:  # noqa: BLE001 - the user's module may raise anything at import
            raise ModelError(f"model.python: importing {mod!r} raised {_one_line(e)}; fix that module.") from None


def _resolve_factory(module: Any, mod: str, attr: str) -> Any:
    """``module.attr`` (dotted) as a callable; ``ModelError`` with close names when missing."""
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ModelError(f"model.python: {mod!r} has no attribute {attr!r}.{hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelError(f"model.python: {mod}:{attr} is a {type(obj).__name__}, not a function or class to call.")
    return obj


def _call_factory(target: str, factory: Any, kwargs: dict[str, Any]) -> nn.Module:
    """``factory(**kwargs)``, which must return an ``nn.Module``."""
    try:
        module = factory(**kwargs)
    except Exception as e:  # noqa: BLE001 - the user's code may raise anything
        raise ModelError(
            f"model.python: {target}(**model.kwargs) raised {_one_line(e)}; fix the factory or model.kwargs."
        ) from None
    if not isinstance(module, nn.Module):
        raise ModelError(
            f"model.python: {target} returned {type(module).__name__}, not a torch.nn.Module; return the network."
        )
    return module


@register_source("python")
def build_python(target: str, spec: "ModelSpec") -> tuple[nn.Module, ModelInfo]:
    """``model.python: "package.module:factory"``: the module ``factory(**model.kwargs)`` returns.

    A ``featviz_info`` dict attribute on the returned module sets ModelInfo fields (``INFO_FIELDS``).
    """
    if spec.weights is not None and not _is_none(spec.weights):
        raise ModelError("model.weights: applies to torchvision models only; use model.checkpoint with model.python.")
    mod, attr = _split_target(target)
    factory = _resolve_factory(_import_module(mod), mod, attr)
    module = _call_factory(target, factory, spec.kwargs)
    if spec.checkpoint:
        load_checkpoint_into(module, spec.checkpoint, trust=spec.trust_checkpoint)
    meta = getattr(module, "featviz_info", None)
    fields = info_fields(meta, f"model.python: {target}") if isinstance(meta, dict) else {}
    return module, ModelInfo(name=target, weights=spec.checkpoint, source="python", **fields)


# ---------------------------------------------------------------- timm


def _import_timm() -> Any:
    """The ``timm`` package, or a ``ModelError`` saying how to install it."""
    try:
        import timm
    except ImportError:
        raise ModelError(
            "model.name: timm models need timm; install the timm extra: pip install 'featviz[timm]'."
        ) from None
    return timm


def _check_timm_name(timm: Any, name: str) -> None:
    """``ModelError`` with close matches when timm does not know ``name``."""
    is_model = getattr(timm, "is_model", None)
    if is_model is None or ":" in name or is_model(name):  # "hf-hub:org/name" names are resolved by timm itself
        return
    known = list(timm.list_models()) if hasattr(timm, "list_models") else []
    close = difflib.get_close_matches(name, known, n=4)
    hint = f" Did you mean {', '.join(close)}?" if close else " See timm.list_models() for the names."
    raise ModelError(f"model.name: timm has no model {name!r}.{hint}")


def _timm_info(name: str, module: nn.Module, weights: str | None) -> ModelInfo:
    """ModelInfo from timm's ``pretrained_cfg`` (input size, mean, std, number of classes)."""
    cfg = dict(getattr(module, "pretrained_cfg", None) or getattr(module, "default_cfg", None) or {})
    size = cfg.get("input_size") or (3, 224, 224)
    num_classes = getattr(module, "num_classes", cfg.get("num_classes"))
    labels = cfg.get("label_names")
    if labels and len(labels) == num_classes:
        class_names: tuple[str, ...] | None = tuple(labels)
    else:
        class_names = imagenet_classes() if num_classes == 1000 else None
    return ModelInfo(
        name=f"timm/{name}",
        input_size=int(size[-2]),
        mean=tuple(float(v) for v in cfg.get("mean", IMAGENET_MEAN)),  # type: ignore[arg-type]
        std=tuple(float(v) for v in cfg.get("std", IMAGENET_STD)),  # type: ignore[arg-type]
        class_names=class_names,
        weights=weights,
        source="timm",
    )


@register_source("timm")
def build_timm(name: str, spec: "ModelSpec") -> tuple[nn.Module, ModelInfo]:
    """``timm/<name>``: ``timm.create_model(name, pretrained=model.pretrained, **model.kwargs)``."""
    timm = _import_timm()
    if spec.weights is not None and not _is_none(spec.weights):
        raise ModelError(
            "model.weights: timm models take model.pretrained (true/false) or a tag in the name, "
            "e.g. timm/resnet50.a1_in1k."
        )
    _check_timm_name(timm, name)
    pretrained = spec.pretrained and not spec.checkpoint and not _is_none(spec.weights)
    try:
        module = timm.create_model(name, pretrained=pretrained, **spec.kwargs)
    except OSError as e:
        raise ModelError(
            f"model.pretrained: the weights of timm/{name} could not be downloaded ({_one_line(e, 160)}); "
            "check the internet connection, or set model.pretrained: false, or give model.checkpoint."
        ) from None
    except Exception as e:  # noqa: BLE001 - timm raises many types for bad names/kwargs
        raise ModelError(
            f"model.name: timm could not create {name!r} ({_one_line(e)}); check the name and model.kwargs."
        ) from None
    if spec.checkpoint:
        load_checkpoint_into(module, spec.checkpoint, trust=spec.trust_checkpoint)
        return module, _timm_info(name, module, str(spec.checkpoint))
    return module, _timm_info(name, module, "pretrained" if pretrained else "none")
