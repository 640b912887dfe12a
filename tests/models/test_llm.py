"""LLM clients, the response cache, lenient JSON and quarantine.

The OpenAI-compatible client talks to a scripted chat-completions server on
127.0.0.1 started by each test; the transformers client loads a tiny random model
built and saved here. Nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import pytest

from dreamframe_assets.core.params import LLMParams, ParamsError
from dreamframe_assets.models.llm import (
    BACKOFF_CAP,
    CachedChat,
    LLMError,
    OpenAIChatClient,
    TransformersChatClient,
    ask_json,
    is_loopback,
    load_prompt,
    make_client,
    parse_json,
)


# ---------------------------------------------------------------- a scripted server
class Reply:
    """A non-default answer: any status, headers and raw body."""

    def __init__(self, status: int, body: str = "", headers: dict | None = None):
        self.status, self.body, self.headers = status, body, headers or {}


class ChatServer:
    """A chat-completions server on 127.0.0.1; ``handler(body, n)`` scripts the answers.

    The handler gets the request body and its 0-based arrival number, and returns
    the assistant's text (a 200 reply) or a ``Reply``. The server records every
    request and the most requests it had in flight at once.
    """

    def __init__(self, handler: Callable[[dict, int], str | Reply], delay: float = 0.0):
        self.handler = handler
        self.delay = delay
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    n = len(server.bodies)
                    server.bodies.append(body)
                    server.headers.append(dict(self.headers))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if server.delay:
                        time.sleep(server.delay)
                    reply = server.handler(body, n)
                finally:
                    with server.lock:
                        server.in_flight -= 1
                if not isinstance(reply, Reply):
                    text = reply
                    reply = Reply(200, json.dumps({
                        "id": f"r{n}", "object": "chat.completion",
                        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                        "usage": {"prompt_tokens": len(json.dumps(body["messages"])) // 4, "completion_tokens": len(text) // 4},
                    }))
                data = reply.body.encode()
                try:
                    self.send_response(reply.status)
                    for k, v in {"Content-Type": "application/json", **reply.headers}.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on this one (a timeout test)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "ChatServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def client_for(server: ChatServer, **kw) -> OpenAIChatClient:
    params = LLMParams(**{"base_url": server.base_url, "model": "test-model", **kw})
    return OpenAIChatClient(params, backoff=0.01, where="movie_plots.llm")


def msgs(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def is_repair(body: dict) -> bool:
    return "=== Answer that could not be used ===" in body["messages"][-1]["content"]


# ---------------------------------------------------------------- parse_json
@pytest.mark.parametrize("text, want", [
    ('{"a": 1}', {"a": 1}),
    ('```json\n{"a": [1, 2]}\n```', {"a": [1, 2]}),
    ('```\n[{"x": 1}]\n```\nThat is all.', [{"x": 1}]),
    ('Sure! Here is the JSON:\n{"a": "b"}\nLet me know if you need {more}.', {"a": "b"}),
    ('{"a": 1 "b": 2}', {"a": 1, "b": 2}),  # missing comma
    ('{"frames": [{"x": 1}\n {"x": 2}]}', {"frames": [{"x": 1}, {"x": 2}]}),  # missing comma between objects
    ('{"a": [1, 2,], "b": 3,}', {"a": [1, 2], "b": 3}),  # trailing commas
    ('{"a": "a } inside"} and then }', {"a": "a } inside"}),
])
def test_parse_json_is_lenient(text, want):
    value, reason = parse_json(text)
    assert reason == ""
    assert value == want


@pytest.mark.parametrize("text, why", [
    ("", "empty"),
    ("I would rather not answer in JSON.", "no JSON"),
    ("42", "no JSON"),
])
def test_parse_json_rejects_non_json(text, why):
    value, reason = parse_json(text)
    assert value is None and why in reason


# ---------------------------------------------------------------- the HTTP client
def test_request_body_headers_and_usage(monkeypatch):
    monkeypatch.setenv("DREAMFRAME_TEST_KEY", "sk-test")
    with ChatServer(lambda body, n: '{"ok": true}') as server:
        client = client_for(server, temperature=0.2, top_p=0.9, max_tokens=77, seed=5, api_key_env="DREAMFRAME_TEST_KEY")
        schema = {"title": "level1", "type": "object"}
        [done] = client.complete([msgs("hi")], schema)
        assert done.text == '{"ok": true}' and done.prompt_tokens > 0 and done.completion_tokens > 0
        client.complete([msgs("hi")], None)
    body, plain = server.bodies
    assert body["model"] == "test-model" and body["messages"] == msgs("hi")
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.2, 0.9, 77, 5)
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "level1", "schema": schema}}
    assert plain["response_format"] == {"type": "json_object"}
    assert server.headers[0]["Authorization"] == "Bearer sk-test"
    assert "sk-test" not in client.identity() and "openai" in client.identity() and server.base_url in client.identity()


def test_no_key_no_header_and_no_json_mode(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-this-server")  # the default names no variable
    with ChatServer(lambda body, n: "plain") as server:
        client_for(server, json_mode=False).complete([msgs("hi")], {"type": "object"})
    assert "Authorization" not in server.headers[0]
    assert "response_format" not in server.bodies[0]


def test_429_honours_retry_after():
    def handler(body, n):
        return Reply(429, '{"error": "slow down"}', {"Retry-After": "3"}) if n == 0 else "fine"

    with ChatServer(handler) as server:
        client = client_for(server)
        waits: list[float] = []
        client.sleep = waits.append
        [done] = client.complete([msgs("hi")])
    assert done.text == "fine"
    assert waits == [3.0]
    assert len(server.bodies) == 2


def _waits_for(retry_after: str) -> list[float]:
    """The waits a client takes after one 429 carrying this Retry-After."""
    def handler(body, n):
        return Reply(429, "slow down", {"Retry-After": retry_after}) if n == 0 else "fine"

    with ChatServer(handler) as server:
        client = client_for(server)
        waits: list[float] = []
        client.sleep = waits.append
        [done] = client.complete([msgs("hi")])
    assert done.text == "fine"
    return waits


def test_retry_after_as_a_date_is_honoured():
    [wait] = _waits_for(format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True))
    assert 25.0 <= wait <= 30.0  # HTTP dates have whole seconds


def test_huge_retry_after_is_capped():
    assert _waits_for("86400") == [BACKOFF_CAP]
    assert _waits_for(format_datetime(datetime.now(timezone.utc) + timedelta(days=2), usegmt=True)) == [BACKOFF_CAP]


def test_retry_after_in_the_past_waits_nothing():
    assert _waits_for(format_datetime(datetime.now(timezone.utc) - timedelta(hours=1), usegmt=True)) == [0.0]


def test_unreadable_retry_after_falls_back_to_backoff():
    [wait] = _waits_for("soon, please")
    assert 0.005 <= wait <= 0.01  # backoff 0.01, jittered


def test_5xx_backs_off_with_jitter():
    with ChatServer(lambda body, n: Reply(503, "busy") if n < 2 else "fine") as server:
        client = client_for(server)
        waits: list[float] = []
        client.sleep = waits.append
        [done] = client.complete([msgs("hi")])
    assert done.text == "fine"
    assert len(waits) == 2
    assert 0.005 <= waits[0] <= 0.01 and 0.01 <= waits[1] <= 0.02  # backoff 0.01 doubled, jitter in [0.5, 1]


def test_timeout_is_retried():
    def handler(body, n):
        if n == 0:
            time.sleep(1.0)  # longer than the client waits
        return "in time"

    with ChatServer(handler) as server:
        client = client_for(server, timeout=0.2)
        [done] = client.complete([msgs("hi")])
    assert done.text == "in time"
    assert len(server.bodies) == 2


def test_exhausted_retries_name_url_status_and_body():
    with ChatServer(lambda body, n: Reply(500, '{"error": "model crashed"}')) as server:
        client = client_for(server, max_retries=2)
        client.sleep = lambda s: None
        with pytest.raises(LLMError) as err:
            client.complete([msgs("hi")])
    text = str(err.value)
    assert server.base_url + "/chat/completions" in text and "500" in text and "model crashed" in text
    assert "3 attempt" in text and len(server.bodies) == 3


def test_client_errors_are_not_retried():
    with ChatServer(lambda body, n: Reply(400, '{"error": "unknown model"}')) as server:
        with pytest.raises(LLMError, match="400.*unknown model"):
            client_for(server).complete([msgs("hi")])
    assert len(server.bodies) == 1


def test_connection_refused_is_retried_then_reported():
    with ChatServer(lambda body, n: "x") as server:
        url = server.base_url
    client = OpenAIChatClient(LLMParams(base_url=url, model="m", max_retries=1), backoff=0.0)
    waits: list[float] = []
    client.sleep = waits.append
    with pytest.raises(LLMError, match="ConnectError") as err:
        client.complete([msgs("hi")])
    assert "2 attempt" in str(err.value) and len(waits) == 1


# ---------------------------------------------------------------- keys
@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("localhost", True), ("LOCALHOST", True), ("::1", True),
    ("[::1]", True), ("10.0.0.5", False), ("192.168.1.20", False), ("gpu-box.lan", False), ("localhost.evil.com", False),
    ("128.0.0.1", False),
])
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def test_a_named_key_goes_to_its_server(monkeypatch):
    monkeypatch.setenv("DREAMFRAME_TEST_KEY", "sk-named")
    with ChatServer(lambda body, n: "ok") as server:
        client_for(server, api_key_env="DREAMFRAME_TEST_KEY").complete([msgs("hi")])  # plain http, but loopback
    assert server.headers[0]["Authorization"] == "Bearer sk-named"


def test_an_unset_key_variable_fails_before_any_request(monkeypatch):
    monkeypatch.setenv("DREAMFRAME_TEST_KEY", "  ")
    with ChatServer(lambda body, n: "ok") as server:
        with pytest.raises(ParamsError) as err:
            client_for(server, api_key_env="DREAMFRAME_TEST_KEY")
    message = str(err.value)
    assert "movie_plots.llm.api_key_env" in message and "DREAMFRAME_TEST_KEY" in message and server.base_url in message
    assert "\n" not in message and server.bodies == []


@pytest.mark.parametrize("url", ["http://192.168.1.20:8000/v1", "http://gpu-box.lan/v1", "http://localhost.evil.com/v1"])
def test_no_key_in_clear_text_to_another_machine(monkeypatch, url):
    monkeypatch.setenv("DREAMFRAME_TEST_KEY", "sk-planted-0001")
    params = LLMParams(base_url=url, model="m", api_key_env="DREAMFRAME_TEST_KEY")
    with pytest.raises(ParamsError) as err:
        make_client(params, where="qa_pairs.llm")  # no request is made: the address does not even resolve
    message = str(err.value)
    assert "qa_pairs.llm.api_key_env" in message and url in message and "qa_pairs.llm.allow_plain_http_key" in message
    assert "sk-planted-0001" not in message
    # Said explicitly, or over https, the key may go.
    assert make_client(params.model_copy(update={"allow_plain_http_key": True}))._key is not None
    assert make_client(params.model_copy(update={"base_url": url.replace("http:", "https:")}))._key is not None
    # With no key named, any server is fine.
    assert make_client(params.model_copy(update={"api_key_env": ""}))._key is None


def test_the_key_shows_up_nowhere(monkeypatch, tmp_path: Path, caplog):
    """A server that echoes the Authorization header into its answers and errors."""
    key = "sk-planted-secret-4242"
    monkeypatch.setenv("DREAMFRAME_TEST_KEY", key)
    servers: list[ChatServer] = []

    def handler(body, n):
        echoed = servers[0].headers[n]["Authorization"]
        if body["messages"][0]["content"] == "fail":
            return Reply(400, f"bad header {echoed}")
        return json.dumps({"name": f"you sent {echoed}"})

    caplog.set_level(logging.DEBUG)
    with ChatServer(handler) as server:
        servers.append(server)
        client = client_for(server, api_key_env="DREAMFRAME_TEST_KEY")
        chat = CachedChat(client, tmp_path)
        [(value, failed)] = ask_json(chat, [msgs("name?")], _need_key, ["s"], "m1", "movie_plots")
        with pytest.raises(LLMError) as err:
            client.complete([msgs("fail")])
    assert server.headers[0]["Authorization"] == f"Bearer {key}"  # it was sent, to this server
    assert failed is None and "you sent Bearer" in value
    shown = [value, str(err.value), repr(err.value), client.identity(), chat.identity(), repr(client), str(vars(client)),
             *(r.getMessage() for r in caplog.records), *(p.read_text() for p in tmp_path.rglob("*") if p.is_file())]
    assert all(key not in text for text in shown)
    assert len(list(tmp_path.rglob("*.json"))) == 1


def test_requests_run_concurrently_up_to_the_limit():
    with ChatServer(lambda body, n: body["messages"][0]["content"].upper(), delay=0.05) as server:
        client = client_for(server, concurrency=4)
        texts = [f"request {i}" for i in range(16)]
        done = client.complete([msgs(t) for t in texts])
    assert [d.text for d in done] == [t.upper() for t in texts]  # answers in request order
    assert 1 < server.max_in_flight <= 4


# ---------------------------------------------------------------- the cache
def test_cache_never_sends_a_prompt_twice(tmp_path: Path):
    with ChatServer(lambda body, n: f"answer to {body['messages'][0]['content']}") as server:
        chat = CachedChat(client_for(server), tmp_path)
        first = chat.complete([msgs("a"), msgs("b"), msgs("a")], None, "p/1")
        assert [c.text for c in first] == ["answer to a", "answer to b", "answer to a"]
        assert len(server.bodies) == 2  # the repeated prompt is sent once
        again = CachedChat(client_for(server), tmp_path)  # a new run
        second = again.complete([msgs("a"), msgs("b")], None, "p/1")
        assert [c.text for c in second] == ["answer to a", "answer to b"] and all(c.cached for c in second)
        assert again.usage() == {"requests_sent": 0, "cache_hits": 2, "prompt_tokens": 0, "completion_tokens": 0}
        # Anything that shapes the answer is in the key: prompt version, schema, sampling, seed.
        again.complete([msgs("a")], None, "p/2")
        again.complete([msgs("a")], {"type": "object"}, "p/1")
        again.complete([msgs("a")], None, "p/1", seed=7)
        CachedChat(client_for(server, temperature=0.1), tmp_path).complete([msgs("a")], None, "p/1")
        assert len(server.bodies) == 6
    assert chat.usage()["requests_sent"] == 2 and chat.usage()["prompt_tokens"] > 0


def test_crash_resume_keeps_answers_that_arrived(tmp_path: Path):
    broken = {"yes": True}

    def handler(body, n):
        text = body["messages"][0]["content"]
        if text == "c" and broken["yes"]:
            return Reply(400, "bad request")
        return f"answer to {text}"

    with ChatServer(handler) as server:
        chat = CachedChat(client_for(server, concurrency=2), tmp_path)
        with pytest.raises(LLMError):
            chat.complete([msgs(x) for x in "abcd"], None, "p/1")
        assert chat.usage()["requests_sent"] == 3  # a, b and d were kept as they arrived
        broken["yes"] = False
        sent = len(server.bodies)
        resumed = CachedChat(client_for(server), tmp_path)
        out = resumed.complete([msgs(x) for x in "abcd"], None, "p/1")
    assert [c.text for c in out] == [f"answer to {x}" for x in "abcd"]
    assert len(server.bodies) == sent + 1 and resumed.usage()["cache_hits"] == 3


# ---------------------------------------------------------------- repair and quarantine
def _need_key(obj):
    if not isinstance(obj, dict) or "name" not in obj:
        raise ValueError("the answer has no 'name'")
    return obj["name"]


def test_bad_answer_gets_one_repair(tmp_path: Path):
    def handler(body, n):
        return '{"name": "fixed"}' if is_repair(body) else "Sorry, I can't do JSON."

    with ChatServer(handler) as server:
        chat = CachedChat(client_for(server), tmp_path)
        [(value, failed)] = ask_json(chat, [msgs("give me a name")], _need_key, ["s"], "m1", "movie_plots")
    assert (value, failed) == ("fixed", None)
    repairs = [b for b in server.bodies if is_repair(b)]
    assert len(repairs) == 1 and len(server.bodies) == 2
    content = repairs[0]["messages"][0]["content"]
    assert "give me a name" in content and "Sorry, I can't do JSON." in content and "no JSON" in content


def test_validation_failure_also_gets_repaired(tmp_path: Path):
    def handler(body, n):
        return '{"name": "ok"}' if is_repair(body) else '{"title": "no name here"}'

    with ChatServer(handler) as server:
        chat = CachedChat(client_for(server), tmp_path)
        [(value, failed)] = ask_json(chat, [msgs("name?")], _need_key, ["s"], "m1", "movie_plots")
    assert value == "ok" and failed is None
    assert "the answer has no 'name'" in server.bodies[1]["messages"][0]["content"]


def test_unparseable_answer_is_quarantined_never_dropped(tmp_path: Path):
    with ChatServer(lambda body, n: "<<garbage>>") as server:
        chat = CachedChat(client_for(server), tmp_path)
        request = msgs("write JSON please")
        results = ask_json(chat, [request, request], _need_key, ["level3:0.0", "level3:0.1"], "m1", "movie_plots")
    assert len(server.bodies) == 2  # one original, one repair; the repeated request is a cache hit
    for (value, failed), step in zip(results, ["level3:0.0", "level3:0.1"]):
        assert value is None
        assert failed.movie_id == "m1" and failed.stage == "movie_plots" and failed.step == step
        assert json.loads(failed.prompt) == request
        assert failed.response == "<<garbage>>"
        assert "no JSON" in failed.reason and "repair" in failed.reason


def test_prompts_are_versioned_package_data():
    for name in ("level1", "level2", "level3", "qa", "repair"):
        prompt = load_prompt(name)
        assert prompt.version == "1" and prompt.tag == f"{name}/1"
        assert "<!--" not in prompt.text


# ---------------------------------------------------------------- transformers, with a tiny model (conftest)


def test_transformers_batched_equals_one_by_one(tiny_model: Path):
    # float32 pinned: half precision on a GPU may break argmax ties differently with padding.
    params = LLMParams(client="transformers", model=str(tiny_model), temperature=0.0, max_tokens=12, batch_size=4,
                       dtype="float32")
    client = TransformersChatClient(params)
    requests = [msgs("the keeper walks"), msgs("a storm comes in from the north and the boat runs aground"),
                msgs("she holds a lantern"), msgs("they sit together in the kitchen and share")]
    batched = client.complete(requests)
    single = [client.complete([r])[0] for r in requests]
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.prompt_tokens for c in batched] == [c.prompt_tokens for c in single]
    assert all(0 < c.completion_tokens <= 12 for c in batched)
    tokenizer, _ = client._load()
    assert tokenizer.padding_side == "left" and tokenizer.pad_token is not None
    assert "transformers" in client.identity() and str(tiny_model) in client.identity()


def test_transformers_random_output_is_quarantined(tiny_model: Path, tmp_path: Path):
    params = LLMParams(client="transformers", model=str(tiny_model), temperature=0.0, max_tokens=16)
    chat = CachedChat(TransformersChatClient(params), tmp_path)
    request = msgs("Answer with a JSON object with a name.")
    [(value, failed)] = ask_json(chat, [request], _need_key, ["level1"], "m1", "movie_plots")
    assert value is None
    assert json.loads(failed.prompt) == request
    assert failed.response == chat.complete([request])[0].text  # the raw text, from the cache
    assert "repair answer failed too" in failed.reason
    assert chat.usage()["requests_sent"] == 2 and chat.usage()["completion_tokens"] > 0


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_kept_answer_is_asked_again_never_served(tmp_path: Path, damage: str, caplog):
    """A kept answer cut short or altered on disk is found by its checksum: the model is asked
    again and the new answer replaces it."""
    with ChatServer(lambda body, n: f'{{"answer": "reply {n}"}}') as server:
        chat = CachedChat(client_for(server), tmp_path)
        first = chat.complete([[{"role": "user", "content": "hi"}]])[0].text
        [path] = [p for p in tmp_path.rglob("*.json")]
        blob = path.read_bytes()
        path.write_bytes(blob[:-9] if damage == "truncate" else blob[:-3] + bytes([blob[-3] ^ 0x01]) + blob[-2:])
        again = CachedChat(client_for(server), tmp_path)
        with caplog.at_level("WARNING", logger="dreamframe"):
            second = again.complete([[{"role": "user", "content": "hi"}]])[0]
        assert len(server.bodies) == 2 and not second.cached and second.text != first
        assert "damaged" in caplog.text
        assert CachedChat(client_for(server), tmp_path).complete([[{"role": "user", "content": "hi"}]])[0].cached
