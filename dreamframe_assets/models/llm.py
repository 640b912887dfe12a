"""Chat models for stage 1 and the QA writer: clients, a response cache, lenient JSON.

Two clients share one small interface (``identity()`` and ``complete()``): an
OpenAI-compatible HTTP server (vLLM, Ollama, llama.cpp, OpenAI) and a local
transformers model. ``CachedChat`` stores every answer on disk as soon as it
arrives, keyed by everything that shapes it, so a re-run or a resumed crash never
pays for a prompt twice. Models often answer with broken JSON (the method's own
example misses commas), so parsing is lenient, a failed answer gets one repair
request, and what still fails is quarantined with its prompt, never dropped.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Sequence

import httpx
import json_repair

from ..core.cache import digest, write_atomic
from ..core.params import LLMParams
from ..core.plot import Quarantined
from .device import device_and_dtype, load_once

Messages = list[dict]
OnDone = Callable[[int, "Completion"], None]

# Request settings that change an answer; all of them go into the cache key.
SAMPLING_KEYS = ("temperature", "top_p", "max_tokens", "seed", "json_mode")
BACKOFF_CAP = 60.0  # seconds: the longest wait between retries (Retry-After may ask for more)


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool = False


class LLMError(RuntimeError):
    """A request failed for good (after retries); the message names URL, status and body."""


class QuarantineError(Exception):
    """A movie (or QA batch) could not be written at all; ``records`` say why, with prompts."""

    def __init__(self, message: str, records: Sequence[Quarantined]):
        super().__init__(message)
        self.records: list[Quarantined] = list(records)


# ---------------------------------------------------------------- prompts
@dataclass(frozen=True)
class Prompt:
    name: str
    version: str
    text: str

    def render(self, **values: Any) -> str:
        """Fill ``{{key}}`` slots in one pass (JSON braces and braces in the values stay as they are)."""
        missing = set(re.findall(r"\{\{(\w+)\}\}", self.text)) - set(values)
        if missing:
            raise KeyError(f"prompt {self.name}: no value for {sorted(missing)}")
        return re.sub(r"\{\{(\w+)\}\}", lambda m: str(values[m.group(1)]), self.text)

    @property
    def tag(self) -> str:
        return f"{self.name}/{self.version}"


def prompt_names() -> list[str]:
    """The prompts shipped in ``dreamframe_assets/prompts``, by name."""
    folder = resources.files("dreamframe_assets").joinpath("prompts")
    return sorted(p.name.removesuffix(".md") for p in folder.iterdir() if p.name.endswith(".md"))


def load_prompt(name: str) -> Prompt:
    """A prompt of ``dreamframe_assets/prompts``; its first line gives the version."""
    raw = resources.files("dreamframe_assets").joinpath("prompts", f"{name}.md").read_text(encoding="utf-8")
    first, _, body = raw.partition("\n")
    match = re.fullmatch(r"\s*<!--\s*version:\s*(\S+)\s*-->\s*", first)
    if not match:
        raise ValueError(f"prompts/{name}.md: the first line must be '<!-- version: N -->'")
    return Prompt(name, match.group(1), body.strip() + "\n")


# ---------------------------------------------------------------- clients
def _sampling(params: LLMParams, seed: int | None) -> dict:
    out = {k: getattr(params, k) for k in SAMPLING_KEYS}
    if seed is not None:
        out["seed"] = seed
    return out


class OpenAIChatClient:
    """``POST {base_url}/chat/completions``, up to ``concurrency`` requests in flight in all,
    however many movies share the client (each from its own thread)."""

    kind = "openai"

    def __init__(self, params: LLMParams, backoff: float = 1.0):
        self.params = params
        self.backoff = backoff  # first retry waits about this long; doubles after
        self.sleep: Callable[[float], None] = time.sleep  # tests swap it to record waits
        self.url = params.base_url.rstrip("/") + "/chat/completions"
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(params.api_key_env, "") if params.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._in_flight = threading.BoundedSemaphore(params.concurrency)
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(params.timeout),
            limits=httpx.Limits(max_connections=params.concurrency, max_keepalive_connections=params.concurrency),
        )

    def identity(self) -> str:
        return f"openai|{self.params.base_url.rstrip('/')}|{self.params.model}"

    def close(self) -> None:
        self._http.close()

    def body(self, messages: Messages, json_schema: dict | None, seed: int | None = None) -> dict:
        p = self.params
        body: dict[str, Any] = {
            "model": p.model, "messages": messages, "temperature": p.temperature, "top_p": p.top_p,
            "max_tokens": p.max_tokens, "seed": p.seed if seed is None else seed,
        }
        if p.json_mode:
            if json_schema is not None:
                name = re.sub(r"[^A-Za-z0-9_-]", "_", str(json_schema.get("title", "answer")))[:64]
                body["response_format"] = {"type": "json_schema", "json_schema": {"name": name, "schema": json_schema}}
            else:
                body["response_format"] = {"type": "json_object"}
        return body

    def complete(
        self, requests: Sequence[Messages], json_schema: dict | None = None, seed: int | None = None,
        on_done: OnDone | None = None,
    ) -> list[Completion]:
        """Answers in request order. Every request runs to the end (and reaches ``on_done``,
        so the cache keeps it) before the first failure, if any, is raised."""
        def one(i: int) -> Completion:
            result = self._post(self.body(requests[i], json_schema, seed))
            if on_done:
                on_done(i, result)
            return result

        with ThreadPoolExecutor(max_workers=max(1, min(self.params.concurrency, len(requests)))) as pool:
            futures = [pool.submit(one, i) for i in range(len(requests))]
            errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                raise error
        return [f.result() for f in futures]

    def _post(self, body: dict) -> Completion:
        attempts = self.params.max_retries + 1
        failure = ""
        for attempt in range(attempts):
            wait: float | None = None
            try:
                with self._in_flight:
                    response = self._http.post(self.url, json=body)
            except httpx.TransportError as exc:  # connection errors and timeouts
                failure = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return self._read(response)
                failure = f"status {response.status_code}: {response.text[:500]!r}"
                if response.status_code != 429 and response.status_code < 500:
                    raise LLMError(f"POST {self.url} failed with {failure}")
                wait = _retry_after(response)
            if attempt + 1 < attempts:
                if wait is None:  # exponential backoff, jittered to 50-100% so clients spread out
                    wait = min(BACKOFF_CAP, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)
                self.sleep(wait)
        raise LLMError(f"POST {self.url} failed after {attempts} attempt(s); last {failure}")

    def _read(self, response: httpx.Response) -> Completion:
        try:
            data = response.json()
            text = data["choices"][0]["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise LLMError(f"POST {self.url}: not a chat completion ({exc}): {response.text[:500]!r}") from None
        usage = data.get("usage") or {}
        return Completion(text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class TransformersChatClient:
    """A local causal LM through ``from_pretrained`` (hub id or folder), loaded once, on first use.

    Prompts are generated ``batch_size`` at a time with left padding, so every
    answer starts right after its own prompt. It has no constrained decoding:
    the JSON schema is not enforced, only the prompt asks for JSON.
    """

    kind = "transformers"

    def __init__(self, params: LLMParams):
        self.params = params

    def identity(self) -> str:
        return f"transformers|{self.params.model}"

    def _load(self):
        p = self.params
        device, dtype = device_and_dtype(p.device, p.dtype)

        def load():
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(p.model)
            tokenizer.padding_side = "left"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
            return tokenizer, AutoModelForCausalLM.from_pretrained(p.model, dtype=dtype).to(device).eval()

        self.device = device
        return load_once(("causal-lm", p.model, device, str(dtype)), load)

    def complete(
        self, requests: Sequence[Messages], json_schema: dict | None = None, seed: int | None = None,
        on_done: OnDone | None = None,
    ) -> list[Completion]:
        import torch

        tokenizer, model = self._load()
        p = self.params
        out: list[Completion] = []
        for start in range(0, len(requests), p.batch_size):
            batch = list(requests[start : start + p.batch_size])
            texts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in batch]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            kwargs: dict[str, Any] = {"max_new_tokens": p.max_tokens, "pad_token_id": tokenizer.pad_token_id}
            if p.temperature > 0:
                # Seeded by the batch's own content, so an answer does not depend on earlier batches.
                torch.manual_seed(int(digest(p.seed if seed is None else seed, batch)[:15], 16))
                kwargs.update(do_sample=True, temperature=p.temperature, top_p=p.top_p)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.no_grad():
                generated = model.generate(**enc, **kwargs)
            new = generated[:, enc["input_ids"].shape[1] :]
            for row, (mask, tokens) in enumerate(zip(enc["attention_mask"], new)):
                ids = tokens.tolist()
                if tokenizer.eos_token_id is not None and tokenizer.eos_token_id in ids:
                    ids = ids[: ids.index(tokenizer.eos_token_id) + 1]
                done = Completion(tokenizer.decode(ids, skip_special_tokens=True).strip(), int(mask.sum()), len(ids))
                if on_done:
                    on_done(start + row, done)
                out.append(done)
        return out


def make_client(params: LLMParams):
    if params.client == "transformers":
        return TransformersChatClient(params)
    return OpenAIChatClient(params)


# ---------------------------------------------------------------- cache
class CachedChat:
    """A client whose every answer is kept on disk under a key of all that shapes it."""

    def __init__(self, client, cache_dir: Path):
        self.client = client
        self.dir = Path(cache_dir)
        self._lock = threading.Lock()
        self.requests_sent = 0
        self.cache_hits = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def identity(self) -> str:
        return self.client.identity()

    def sampling(self, seed: int | None = None) -> dict:
        return _sampling(self.client.params, seed)

    def key(self, messages: Messages, json_schema: dict | None, version: str, seed: int | None = None) -> str:
        return digest("chat", self.client.identity(), self.sampling(seed), json_schema, version, messages)

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.json"

    def complete(
        self, requests: Sequence[Messages], json_schema: dict | None = None, version: str = "", seed: int | None = None,
    ) -> list[Completion]:
        keys = [self.key(m, json_schema, version, seed) for m in requests]
        found: dict[str, Completion] = {}
        for key in dict.fromkeys(keys):
            path = self._path(key)
            if path.exists():
                data = json.loads(path.read_text())
                found[key] = Completion(data["text"], data["prompt_tokens"], data["completion_tokens"], cached=True)
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        self.cache_hits += sum(k in found for k in keys)
        if missing:
            first = {k: requests[keys.index(k)] for k in missing}

            def store(i: int, done: Completion) -> None:  # as each answer arrives: a crash keeps it
                key = missing[i]
                record = {"text": done.text, "prompt_tokens": done.prompt_tokens,
                          "completion_tokens": done.completion_tokens, "client": self.identity(), "version": version}
                write_atomic(self._path(key), json.dumps(record).encode())
                with self._lock:
                    self.requests_sent += 1
                    self.prompt_tokens += done.prompt_tokens
                    self.completion_tokens += done.completion_tokens
                found[key] = done

            self.client.complete([first[k] for k in missing], json_schema, seed=seed, on_done=store)
        return [found[k] for k in keys]

    def usage(self) -> dict[str, int]:
        return {
            "requests_sent": self.requests_sent, "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
        }


# ---------------------------------------------------------------- lenient JSON
FENCE = re.compile(r"```[A-Za-z]*[ \t]*\n?(.*?)(?:```|$)", re.S)


def parse_json(text: str) -> tuple[object | None, str]:
    """(value, "") for an answer holding a JSON object or array, else (None, reason).

    Strips code fences and prose around the JSON, then tries strict JSON, then
    json_repair (missing or trailing commas, unclosed brackets).
    """
    if not text or not text.strip():
        return None, "empty response"
    fence = FENCE.search(text)
    body = fence.group(1) if fence and fence.group(1).strip() else text
    starts = [i for i in (body.find("{"), body.find("[")) if i >= 0]
    if not starts:
        return None, "no JSON object or array in the response"
    candidate = _balanced(body, min(starts))
    try:
        value = json.loads(candidate)
    except json.JSONDecodeError as exc:
        try:
            value = json_repair.loads(candidate)
        except Exception as repair_exc:  # json_repair raises assorted errors on garbage
            return None, f"not JSON ({exc}) and not repairable ({repair_exc})"
        if not isinstance(value, (dict, list)) or not value:
            return None, f"not JSON ({exc}) and not repairable"
    if not isinstance(value, (dict, list)):
        return None, f"expected a JSON object or array, got {type(value).__name__}"
    return value, ""


def _balanced(text: str, start: int) -> str:
    """The JSON value opening at ``start``, up to its matching bracket (all the rest if unclosed)."""
    depth, in_string, escaped = 0, False, False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return text[start:]


def _check(text: str, validate: Callable[[Any], Any]) -> tuple[Any, str]:
    value, reason = parse_json(text)
    if value is None:
        return None, reason
    try:
        return validate(value), ""
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        return None, str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"


def repair_request(messages: Messages, answer: str, reason: str) -> Messages:
    """One follow-up: the original request, the bad answer and why it failed; JSON only, please."""
    request = "\n\n".join(str(m.get("content", "")) for m in messages if m.get("role") != "assistant")
    text = load_prompt("repair").render(request=request, answer=answer, reason=reason)
    return [{"role": "user", "content": text}]


def ask_json(
    chat: CachedChat, requests: Sequence[Messages], validate: Callable[[Any], Any] | Sequence[Callable[[Any], Any]],
    step_names: Sequence[str],
    movie_id: str, stage: str, json_schema: dict | None = None, version: str = "", seed: int | None = None,
) -> list[tuple[Any, Quarantined | None]]:
    """Send, parse and validate; one repair for each failure; quarantine what still fails.

    ``validate`` (one for all requests, or one per request) turns parsed JSON into
    the caller's value or raises ValueError with a reason. Returns (value, None)
    or (None, Quarantined) per request, in order.
    """
    checks = list(validate) if isinstance(validate, Sequence) else [validate] * len(requests)
    answers = chat.complete(requests, json_schema, version, seed)
    results: list[tuple[Any, Quarantined | None]] = [(None, None)] * len(requests)
    failed: list[tuple[int, str, str]] = []
    for i, answer in enumerate(answers):
        value, reason = _check(answer.text, checks[i])
        if reason:
            failed.append((i, answer.text, reason))
        else:
            results[i] = (value, None)
    if failed:
        repairs = [repair_request(requests[i], text, reason) for i, text, reason in failed]
        fixed = chat.complete(repairs, json_schema, f"{version}+{load_prompt('repair').tag}", seed)
        for (i, text, reason), answer in zip(failed, fixed):
            value, second = _check(answer.text, checks[i])
            if second:
                results[i] = (None, Quarantined(
                    movie_id=movie_id, stage=stage, step=step_names[i], prompt=json.dumps(requests[i]),
                    response=text, reason=f"{reason}; the repair answer failed too: {second}",
                ))
            else:
                results[i] = (value, None)
    return results
