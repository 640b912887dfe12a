"""Chat models for stage 1 and the QA writer: clients, a response cache, lenient JSON.

Two clients share one small interface (``identity()`` and ``complete()``): an
OpenAI-compatible HTTP server (vLLM, Ollama, llama.cpp, OpenAI) and a local
transformers model. ``CachedChat`` stores every answer on disk as soon as it
arrives, keyed by everything that shapes it, so a re-run or a resumed crash never
pays for a prompt twice. Models often answer with broken JSON (the method's own
example misses commas), so parsing is lenient, a failed answer gets one repair
request, and what still fails is quarantined with its prompt, never dropped.

A server's key is read from the variable ``api_key_env`` names for that server
alone, and never goes in clear text to another machine: it is sent over https, or
plain http to loopback, unless ``allow_plain_http_key`` says otherwise.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Sequence

import httpx
import json_repair
import tenacity
from pydantic import SecretStr

from ..core.cache import SEAL, digest, seal, unseal, write_atomic
from ..core.params import LLMParams, ParamsError
from ..core.plot import Quarantined
from .device import device_and_dtype, load_once

log = logging.getLogger("dreamframe")

Messages = list[dict]
OnDone = Callable[[int, "Completion"], None]

# Request settings that change an answer; all of them go into the cache key.
SAMPLING_KEYS = ("temperature", "top_p", "max_tokens", "seed", "json_mode")
BACKOFF_CAP = 60.0  # seconds: the longest wait between retries, whatever Retry-After asks
# Failures worth another try (with 429 and 5xx answers): the request may well pass a moment later.
RETRY_TRANSPORT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
REDACTED = "[api key]"


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


# ---------------------------------------------------------------- keys
def is_loopback(host: str) -> bool:
    """True for this machine: localhost, 127.0.0.0/8 and ::1."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def api_key(params: LLMParams, where: str = "llm") -> SecretStr | None:
    """The key for ``params.base_url``, or None when ``api_key_env`` is empty.

    Raises ParamsError (naming ``<where>.api_key_env`` and the URL) when the named
    variable is unset or empty, or when the key would cross the network in clear
    text: a key read on the way is a key stolen. ``where`` is the params key of the
    LLM block, e.g. ``movie_plots.llm``.
    """
    try:
        url = httpx.URL(params.base_url)
    except httpx.InvalidURL as exc:
        raise ParamsError(f"{where}.base_url: {params.base_url!r} is not a URL ({exc})") from None
    if url.userinfo or url.query:  # printed in errors and kept in every cache key: no secrets in it
        raise ParamsError(f"{where}.base_url: holds a user, password or query; put a key in the variable "
                          f"{where}.api_key_env names instead")
    if not params.api_key_env:
        return None
    key = os.environ.get(params.api_key_env, "").strip()
    if not key:
        raise ParamsError(f"{where}.api_key_env: the variable {params.api_key_env} is unset or empty "
                          f"(it should hold the key for {params.base_url})")
    if not re.fullmatch(r"[\x21-\x7e]+", key):  # a header value; never echoed back in an error
        raise ParamsError(f"{where}.api_key_env: the variable {params.api_key_env} does not hold a key "
                          f"(printable ASCII without spaces) for {params.base_url}")
    safe = url.scheme == "https" or (url.scheme == "http" and (is_loopback(url.host) or params.allow_plain_http_key))
    if not safe:
        raise ParamsError(f"{where}.api_key_env: the key in {params.api_key_env} would go in clear text to "
                          f"{params.base_url}; use https, or set {where}.allow_plain_http_key: true")
    return SecretStr(key)


def auth_headers(params: LLMParams, where: str = "llm") -> dict[str, str]:
    """The Authorization header for ``params.base_url``, under the rules of ``api_key``."""
    key = api_key(params, where)
    return {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}


def check_server(params: LLMParams, where: str = "llm", timeout: float = 5.0) -> None:
    """ParamsError (naming ``<where>.base_url``) unless ``GET {base_url}/models`` gets an HTTP answer.

    Any status will do (a server without that route still answers); only a
    connection that fails or times out means nobody is there. The key goes under
    the rules of ``api_key``, and redirects are not followed.
    """
    headers = auth_headers(params, where)
    url = params.base_url.rstrip("/") + "/models"
    try:
        # trust_env=False: no proxy from the environment sees the request (or its key) on the way
        httpx.get(url, headers=headers, timeout=timeout, follow_redirects=False, trust_env=False)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        why = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise ParamsError(f"{where}.base_url: cannot reach {params.base_url} ({why})") from None


# ---------------------------------------------------------------- clients
class _Retry(Exception):
    """A failed attempt worth another: 429, 5xx, a timeout or a lost connection."""

    def __init__(self, failure: str, retry_after: float | None = None):
        super().__init__(failure)
        self.retry_after = retry_after


def _sampling(params: LLMParams, seed: int | None) -> dict:
    out = {k: getattr(params, k) for k in SAMPLING_KEYS}
    if seed is not None:
        out["seed"] = seed
    return out


class OpenAIChatClient:
    """``POST {base_url}/chat/completions``, up to ``concurrency`` requests in flight in all,
    however many movies share the client (each from its own thread)."""

    kind = "openai"

    def __init__(self, params: LLMParams, backoff: float = 1.0, where: str = "llm"):
        """``where`` is the params key of the LLM block, named in errors about its settings."""
        self.params = params
        self.backoff = backoff  # first retry waits about this long; doubles after
        self.sleep: Callable[[float], None] = time.sleep  # tests swap it to record waits
        self.url = params.base_url.rstrip("/") + "/chat/completions"
        self._key = api_key(params, where)  # checked before any request is made
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        self._in_flight = threading.BoundedSemaphore(params.concurrency)
        self._http = httpx.Client(
            headers=headers,
            trust_env=False,  # the request goes to base_url itself, never to a proxy the environment names
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

    def _redact(self, text: str) -> str:
        """``text`` without the key: a server may echo request headers back into what we keep."""
        return text.replace(self._key.get_secret_value(), REDACTED) if self._key else text

    def _post(self, body: dict) -> Completion:
        attempts = self.params.max_retries + 1
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts), retry=tenacity.retry_if_exception_type(_Retry),
            wait=self._wait, sleep=lambda seconds: self.sleep(seconds),
        )
        try:
            return retrying(self._attempt, body)
        except tenacity.RetryError as exc:
            last = exc.last_attempt.exception()
            raise LLMError(f"POST {self.url} failed after {attempts} attempt(s); last {last}") from None

    def _attempt(self, body: dict) -> Completion:
        try:
            with self._in_flight:
                response = self._http.post(self.url, json=body)
        except RETRY_TRANSPORT as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from None
        except httpx.TransportError as exc:  # an unsupported scheme, a proxy error: no use retrying
            raise LLMError(f"POST {self.url} failed: {type(exc).__name__}: {exc}") from None
        if response.status_code == 200:
            return self._read(response)
        failure = f"status {response.status_code}: {self._redact(response.text)[:500]!r}"
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retry(failure, _retry_after(response.headers.get("Retry-After")))
        raise LLMError(f"POST {self.url} failed with {failure}")

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """The server's Retry-After when given, else exponential backoff jittered to 50-100%
        (so clients spread out); never more than BACKOFF_CAP."""
        asked = state.outcome.exception().retry_after
        if asked is not None:
            return min(BACKOFF_CAP, asked)
        return tenacity.wait_exponential(multiplier=self.backoff, max=BACKOFF_CAP)(state) * random.uniform(0.5, 1.0)

    def _read(self, response: httpx.Response) -> Completion:
        try:
            data = response.json()
            text = data["choices"][0]["message"].get("content") or ""
            if not isinstance(text, str):
                raise TypeError(f"the content is a {type(text).__name__}, not text")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise LLMError(f"POST {self.url}: not a chat completion ({exc}): {self._redact(response.text)[:500]!r}") from None
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        return Completion(self._redact(text), _tokens(usage, "prompt_tokens"), _tokens(usage, "completion_tokens"))


def _tokens(usage: dict, name: str) -> int:
    """A token count of the usage block; 0 when a server reports none (or nonsense)."""
    value = usage.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date; a past date is 0),
    or None when there is none or it cannot be read."""
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC with no further word on it
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


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
            model = AutoModelForCausalLM.from_pretrained(p.model, dtype=dtype, use_safetensors=True)
            return tokenizer, model.to(device).eval()

        self.device = device
        # the writers and the blind answerer may share one model: kept until a diffusion stage loads
        return load_once(("causal-lm", p.model, device, str(dtype)), load,
                         stages={"movie_plots", "qa_pairs", "eval_scores"})

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


def make_client(params: LLMParams, where: str = "llm"):
    """The client ``params.client`` names; ``where`` is the params key of the LLM block, for errors."""
    if params.client == "transformers":
        return TransformersChatClient(params)
    return OpenAIChatClient(params, where=where)


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

    def _read(self, path: Path) -> dict | None:
        """A kept answer, or None when there is none or it is damaged (reported, deleted: asked
        again). Answers are sealed with a checksum (``core.cache.seal``); unsealed ones, as
        earlier versions kept them, are read when they are whole JSON."""
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        data = unseal(blob) if blob.startswith(SEAL) else blob
        try:
            record = json.loads(data) if data is not None else None
            if isinstance(record["text"], str) and all(isinstance(record[k], int) for k in ("prompt_tokens", "completion_tokens")):
                if data is blob:  # an answer kept before answers were sealed: sealed from now on
                    write_atomic(path, seal(blob))
                return record
        except (ValueError, TypeError, KeyError):
            pass
        log.warning("kept answer %s is damaged (checksum or JSON); asking the model again", path)
        path.unlink(missing_ok=True)
        return None

    def complete(
        self, requests: Sequence[Messages], json_schema: dict | None = None, version: str = "", seed: int | None = None,
    ) -> list[Completion]:
        keys = [self.key(m, json_schema, version, seed) for m in requests]
        found: dict[str, Completion] = {}
        for key in dict.fromkeys(keys):
            data = self._read(self._path(key))
            if data is not None:
                found[key] = Completion(valid_text(data["text"]), data["prompt_tokens"], data["completion_tokens"], cached=True)
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        self.cache_hits += sum(k in found for k in keys)
        if missing:
            first = {k: requests[keys.index(k)] for k in missing}

            def store(i: int, done: Completion) -> None:  # as each answer arrives: a crash keeps it
                key = missing[i]
                done = Completion(valid_text(done.text), done.prompt_tokens, done.completion_tokens)
                record = {"text": done.text, "prompt_tokens": done.prompt_tokens,
                          "completion_tokens": done.completion_tokens, "client": self.identity(), "version": version}
                write_atomic(self._path(key), seal(json.dumps(record).encode()))
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
SURROGATE = re.compile("[\ud800-\udfff]")
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


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
    except RecursionError:
        return None, "JSON nested too deeply"
    except ValueError as exc:  # a JSONDecodeError, or a number too long to read
        try:
            value = json_repair.loads(candidate)
        except Exception as repair_exc:  # json_repair raises assorted errors on garbage
            return None, f"not JSON ({exc}) and not repairable ({repair_exc})"
        if not isinstance(value, (dict, list)) or not value:
            return None, f"not JSON ({exc}) and not repairable"
    if not isinstance(value, (dict, list)):
        return None, f"expected a JSON object or array, got {type(value).__name__}"
    if SURROGATE.search(candidate) or SURROGATE_ESCAPE.search(candidate):
        try:
            value = _valid_strings(value)
        except RecursionError:
            return None, "JSON nested too deeply"
    return value, ""


def valid_text(text: str) -> str:
    """``text`` with lone surrogates (a JSON escape like \\ud800 with no pair) replaced by U+FFFD:
    UTF-8 cannot hold them, so no table could."""
    return SURROGATE.sub("\ufffd", text)


def _valid_strings(value: Any) -> Any:
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, list):
        return [_valid_strings(v) for v in value]
    if isinstance(value, dict):
        return {valid_text(k): _valid_strings(v) for k, v in value.items()}
    return value


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
