"""Text-only probes: can the QA be answered without watching the video?

A video model tuned on multiple-choice QA that text alone answers learns to ignore
the frames. Each probe here looks for one way text gives answers away. All of them
are dataset-level: they take every QA of every movie and return one pick (option
index) per QA, and they read only what a trainer shows a model in text: question,
options, answers (of the movie's *other* QAs, never the QA's own), qtype and
``qa_id`` (for seeded tie-breaks). Never frames, plots or evidence frames.

- ``frequency``: the option seen most often among the options and question texts of
  the movie's other QAs (the true fact recurs, made-up distractors do not).
- ``length``: the longest option (writers spell out the right answer).
- ``conversation``: a trainer that packs a video's QA into one LLaVA conversation
  shows every other answer of the movie next to the question; copy the answer of the
  nearest keyframe question of the same qtype and template when it is an option
  (adjacent keyframes share facts), else the option most often the right answer of
  the movie's other QAs (same qtype counted twice) and named in their questions.
- ``trained``: a logistic regression on per-option features (the above, word
  overlap with the question, length and its rank, option position, hashed words of
  the option, per-qtype interactions), cross-validated by movie, so it learns
  dataset-wide habits of the writer but never the movie it answers. With a single
  movie there is nothing to train on: it abstains (pick -1).

A probe well above ``chance`` is a shortcut a video model would learn.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.cache import bytes_digest, digest
from ..core.plot import QA, answer_key

PROBES = ("frequency", "length", "conversation", "trained")
ABSTAIN = -1

_WORD = re.compile(r"[a-z0-9']+")
_KEYFRAME = re.compile(r"\bkeyframe (\d+)\b")

# conversation: a same-qtype answer counts twice an answer of another qtype; an option
# named in other questions counts as one more answer; the nearest keyframe's answer wins.
SAME_QTYPE_WEIGHT, OTHER_QTYPE_WEIGHT, IN_QUESTION_WEIGHT, NEAREST_WEIGHT = 2.0, 1.0, 1.0, 1e6

FOLDS = 5  # by movie; fewer when there are fewer movies
HASH_FEATURES = 2**12  # hashed option words, plain and per qtype
C = 1.0  # inverse L2 strength of the trained probe
MAX_TRAIN_OPTIONS = 80_000  # option rows (~20,000 QAs) a fold trains on: plenty for a linear model, and fast


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass
class Features:
    """Per QA x option position (n x k, k the most options of any QA); ``mask`` marks real options."""

    mask: np.ndarray  # bool: the QA has an option at this position
    option_count: np.ndarray  # other QAs of the movie that list this option
    answer_count: np.ndarray  # other QAs of the movie whose answer it is
    answer_same_qtype: np.ndarray  # ... of the same qtype
    in_questions: np.ndarray  # other questions of the movie naming it (whole words)
    nearest: np.ndarray  # 1 if it is the answer of the nearest keyframe question of the same qtype and template
    overlap: np.ndarray  # share of its words that are in its own question
    length: np.ndarray  # characters
    words: np.ndarray  # word count
    texts: list[list[str]]  # option keys per QA


def _movie_features(qas: list[QA], rows: list[int], f: Features) -> None:
    """Fill ``f`` for one movie's QAs (``rows``: their places in the dataset), leave-one-out."""
    keys = [f.texts[r] for r in rows]
    answers = [answer_key(qas[r].answer) for r in rows]
    listed = Counter(k for ks in keys for k in set(ks))
    answered = Counter(answers)
    answered_same = Counter(zip((qas[r].qtype for r in rows), answers))
    padded = [" " + " ".join(_words(qas[r].question)) + " " for r in rows]
    corpus = "\n".join(padded)
    named: dict[str, int] = {}
    # keyframe questions by (qtype, template): the answer of the nearest other keyframe
    groups: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for i, r in enumerate(rows):
        question = qas[r].question.lower()
        found = _KEYFRAME.search(question)
        if found:
            template = _KEYFRAME.sub("keyframe #", question)
            groups.setdefault((qas[r].qtype, template), []).append((int(found.group(1)), i))
    nearest: dict[int, str] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        members.sort()
        for pos, (k, i) in enumerate(members):
            # sorted by keyframe, the nearest other is a neighbour in the list; on a tie the earlier
            cands = [members[j] for j in (pos - 1, pos + 1) if 0 <= j < len(members)]
            best = min(cands, key=lambda m: (abs(m[0] - k), m[0]))
            nearest[i] = answers[best[1]]
    for i, r in enumerate(rows):
        qa, own_question = qas[r], padded[i]
        question_words = set(_words(qa.question))
        for p, key in enumerate(keys[i]):
            w = _words(key)
            f.option_count[r, p] = listed[key] - 1
            is_answer = key == answers[i]
            f.answer_count[r, p] = answered[key] - is_answer
            f.answer_same_qtype[r, p] = answered_same[(qa.qtype, key)] - is_answer
            if w:
                needle = " " + " ".join(w) + " "
                if needle not in named:
                    named[needle] = corpus.count(needle)
                f.in_questions[r, p] = named[needle] - own_question.count(needle)
                f.overlap[r, p] = sum(x in question_words for x in w) / len(w)
            f.nearest[r, p] = i in nearest and nearest[i] == key
            f.words[r, p] = len(w)


def features(qas: list[QA]) -> Features:
    """Everything the probes read, computed once: per-movie counters, no pairwise loops."""
    n = len(qas)
    k = max((len(qa.options) for qa in qas), default=1)
    mask = np.zeros((n, k), bool)
    texts = []
    for r, qa in enumerate(qas):
        mask[r, : len(qa.options)] = True
        texts.append([answer_key(o) for o in qa.options])
    zeros = lambda: np.zeros((n, k))  # noqa: E731
    f = Features(mask, zeros(), zeros(), zeros(), zeros(), zeros(), zeros(), zeros(), zeros(), texts)
    for r, ks in enumerate(texts):
        f.length[r, : len(ks)] = [len(x) for x in ks]
    by_movie: dict[str, list[int]] = {}
    for r, qa in enumerate(qas):
        by_movie.setdefault(qa.movie_id, []).append(r)
    for rows in by_movie.values():
        _movie_features(qas, rows, f)
    return f


# ---------------------------------------------------------------- picks
def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64: a well-spread integer per input, vectorised."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _seeds(qas: list[QA]) -> np.ndarray:
    return np.array([int(digest("probe", qa.qa_id)[:16], 16) for qa in qas], dtype=np.uint64)


def pick(scores: np.ndarray, mask: np.ndarray, seeds: np.ndarray, name: str) -> list[int]:
    """Per row the best-scoring real option; exact ties broken by a hash of (probe, qa_id,
    position), so no position is favoured and the same data gives the same picks."""
    if scores.size == 0:
        return [ABSTAIN] * len(scores)
    s = np.where(mask, scores, -np.inf)
    best = mask & (s >= s.max(axis=1, keepdims=True) - 1e-9)
    salt = np.uint64(int(digest("probe", name)[:16], 16))
    positions = np.arange(s.shape[1], dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        key = _mix(seeds[:, None] ^ salt ^ (positions * np.uint64(0xD1B54A32D192ED03)))
    key = np.where(best, key >> np.uint64(1), np.uint64(0))  # ties: the largest hash wins
    return np.where(mask.any(axis=1), key.argmax(axis=1), ABSTAIN).astype(int).tolist()


def frequency_scores(f: Features) -> np.ndarray:
    return f.option_count + f.in_questions


def length_scores(f: Features) -> np.ndarray:
    return f.length


def conversation_scores(f: Features) -> np.ndarray:
    other = f.answer_count - f.answer_same_qtype
    return (NEAREST_WEIGHT * f.nearest + SAME_QTYPE_WEIGHT * f.answer_same_qtype + OTHER_QTYPE_WEIGHT * other
            + IN_QUESTION_WEIGHT * (f.in_questions > 0))


# ---------------------------------------------------------------- the trained probe
def _within(x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` minus its mean over the QA's options, and 1 where it is the QA's maximum."""
    n = np.maximum(mask.sum(axis=1, keepdims=True), 1)
    centred = x - np.where(mask, x, 0).sum(axis=1, keepdims=True) / n
    top = np.where(mask, x, -np.inf).max(axis=1, keepdims=True)
    return centred, (x >= top) & mask


def design(qas: list[QA], f: Features) -> tuple[Any, np.ndarray, np.ndarray]:
    """Rows = real options: (sparse features, label, row of the QA). A block of per-option
    features shared by all qtypes, the option's position, the block again per qtype (a shortcut
    of one qtype need not be another's), and hashed option words and word pairs (plain and per
    qtype: a writer's favourite answers)."""
    from scipy import sparse
    from sklearn.feature_extraction.text import HashingVectorizer

    mask = f.mask
    n, k = mask.shape
    counts = [np.log1p(np.maximum(x, 0)) for x in (f.option_count, f.answer_count, f.answer_same_qtype, f.in_questions)]
    dense = []
    for x in counts:
        centred, top = _within(x, mask)
        dense += [x, centred, top]
    n_opts = np.maximum(mask.sum(axis=1, keepdims=True), 1)
    mean_len = np.where(mask, f.length, 0).sum(axis=1, keepdims=True) / n_opts
    rel_len = np.log(np.maximum(f.length, 1) / np.maximum(mean_len, 1))
    order = np.argsort(np.argsort(np.where(mask, f.length, np.inf), axis=1, kind="stable"), axis=1, kind="stable")
    rank = order / np.maximum(n_opts - 1, 1)  # 0 shortest .. 1 longest
    overlap_c, overlap_top = _within(f.overlap, mask)
    _, longest = _within(f.length, mask)
    _, shortest = _within(-f.length, mask)
    dense += [f.nearest, f.overlap, overlap_c, overlap_top, rel_len, rank, longest, shortest, np.log1p(f.words)]
    rows = np.nonzero(mask)
    block = np.stack([np.asarray(x, dtype=np.float64)[rows] for x in dense], axis=1)
    position = (rows[1][:, None] == np.arange(k)).astype(np.float64)  # the letter a model sees; shared by all qtypes
    qtypes = sorted({qa.qtype for qa in qas})
    qtype_of = np.array([qtypes.index(qa.qtype) for qa in qas])[rows[0]]
    m, d = block.shape
    per_qtype = sparse.csr_matrix(
        (block.ravel(), (np.repeat(np.arange(m), d), (qtype_of[:, None] * d + np.arange(d)).ravel())),
        shape=(m, d * max(len(qtypes), 1)))
    per_qtype.eliminate_zeros()
    distinct: dict[str, int] = {}
    where = np.array([distinct.setdefault(f.texts[r][p], len(distinct)) for r, p in zip(*rows)], dtype=np.int64)
    texts = list(distinct)
    vectorizer = HashingVectorizer(n_features=HASH_FEATURES, alternate_sign=False, binary=True, norm="l2",
                                   token_pattern=r"(?u)\b\w+\b", ngram_range=(1, 2), dtype=np.float64)
    words = vectorizer.transform(texts).tocsr()[where]  # each distinct option hashed once
    shift = (qtype_of.astype(np.int64) + 1) * 2_654_435_761  # the same words, in a qtype's own space
    rows_of_nz = np.repeat(np.arange(m), np.diff(words.indptr))
    words_q = sparse.csr_matrix((words.data, (words.indices + shift[rows_of_nz]) % HASH_FEATURES, words.indptr),
                                shape=words.shape)
    x = sparse.hstack([sparse.csr_matrix(block), sparse.csr_matrix(position), per_qtype, words, words_q], format="csr")
    answer = np.array([qa.answer_index for qa in qas])
    y = (rows[1] == answer[rows[0]]).astype(int)
    return x, y, rows[0]


def _capped(train: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Whole training movies, in the seeded order (``groups``: each row's movie's place in
    it), up to ``MAX_TRAIN_OPTIONS`` option rows."""
    if not len(train):
        return train
    sizes = np.bincount(groups[train])
    ranks = np.flatnonzero(sizes)
    keep = ranks[np.concatenate([[0], np.cumsum(sizes[ranks])[:-1]]) < MAX_TRAIN_OPTIONS]
    return train if len(keep) == len(ranks) else train[np.isin(groups[train], keep)]


def training_order(names: list[str]) -> list[str]:
    """The movies in a seeded order: folds are dealt in it, and training takes its first movies."""
    return sorted(names, key=lambda m: digest("probe-train", m))


def folds_by_movie(names: list[str], folds: int = FOLDS) -> dict[str, int]:
    """Each movie's fold: dealt round-robin in ``training_order``, so folds are even, and a
    movie added or removed past the first movies of that order (those every fold trains on,
    ``_capped``) leaves each fold's training movies unchanged: their fits are kept."""
    return {m: i % min(folds, len(names)) for i, m in enumerate(training_order(names))}


def _fit(x: Any, y: np.ndarray, fits: Any = None) -> tuple[np.ndarray, float]:
    """The logistic regression's weights and intercept on (x, y); ``fits``: a store with
    ``get(key)`` / ``put(key, bytes)`` keyed by the training data, so a fold whose movies did
    not change is not fitted again (the same data gives the same weights)."""
    import io

    import scipy
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, solver="newton-cg", tol=1e-3, max_iter=300)
    key = None
    if fits is not None:  # the data, the model's every setting and the libraries that fit it
        key = digest("probe-fit", sklearn.__version__, scipy.__version__, np.__version__,
                     sorted((k, repr(v)) for k, v in model.get_params().items()), x.shape,
                     bytes_digest(x.data.tobytes()), bytes_digest(x.indices.tobytes()),
                     bytes_digest(x.indptr.tobytes()), bytes_digest(y.tobytes()))
        data = fits.get(key)
        if data is not None:
            stored = np.load(io.BytesIO(data))
            return stored["coef"], float(stored["intercept"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    coef, intercept = model.coef_[0].astype(np.float64), float(model.intercept_[0])
    if fits is not None:
        out = io.BytesIO()
        np.savez(out, coef=coef, intercept=np.float64(intercept))
        fits.put(key, out.getvalue(), item="probe-fit")
    return coef, intercept


def trained_scores(qas: list[QA], f: Features, folds: int = FOLDS, fits: Any = None) -> np.ndarray | None:
    """Out-of-fold option scores, folds by movie (``folds_by_movie``): no movie's own QAs train
    the model that answers it. None with fewer than two movies (nothing to train on without
    the answered movie). ``fits``: where fitted weights are kept (``_fit``)."""
    names = sorted({qa.movie_id for qa in qas})
    if len(names) < 2:
        return None
    fold_of = folds_by_movie(names, folds)
    rank = {m: i for i, m in enumerate(training_order(names))}
    x, y, qa_row = design(qas, f)
    groups = np.array([rank[qa.movie_id] for qa in qas])[qa_row]  # each row's movie, by its place in the order
    fold = np.array([fold_of[qa.movie_id] for qa in qas])[qa_row]
    flat = np.zeros(len(y))
    for k in range(min(folds, len(names))):
        train, test = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        train = _capped(train, groups)
        if len(set(y[train].tolist())) < 2:
            continue  # nothing to learn: scores stay 0, the tie-break decides
        coef, intercept = _fit(x[train], y[train], fits)
        flat[test] = x[test] @ coef + intercept
    out = np.zeros(f.mask.shape)
    out[np.nonzero(f.mask)] = flat
    return out


# ---------------------------------------------------------------- the API
def chance(qas: list[QA]) -> dict[str, Any]:
    """Expected accuracy of a uniform random pick: the mean of 1 / options, overall and per qtype
    and level (fewer options, higher chance; the floor every probe is read against)."""
    inv = np.array([1 / len(qa.options) if qa.options else 0.0 for qa in qas])

    def mean(key: str) -> dict[str, float]:
        groups: dict[str, list[float]] = {}
        for qa, v in zip(qas, inv):
            groups.setdefault(getattr(qa, key), []).append(v)
        return {g: round(float(np.mean(v)), 4) for g, v in sorted(groups.items())}

    return {"overall": round(float(inv.mean()), 4) if len(inv) else 0.0, "by_qtype": mean("qtype"),
            "by_level": mean("level")}


def run_probes(qas: list[QA], fits: Any = None) -> dict[str, list[int]]:
    """Every probe's picks, in the order of ``qas`` (all movies at once). ``trained`` is all -1
    (abstains) when there is a single movie; ``fits``: where its fitted weights are kept."""
    if not qas:
        return {name: [] for name in PROBES}
    f = features(qas)
    seeds = _seeds(qas)
    out = {
        "frequency": pick(frequency_scores(f), f.mask, seeds, "frequency"),
        "length": pick(length_scores(f), f.mask, seeds, "length"),
        "conversation": pick(conversation_scores(f), f.mask, seeds, "conversation"),
    }
    scores = trained_scores(qas, f, fits=fits)
    out["trained"] = [ABSTAIN] * len(qas) if scores is None else pick(scores, f.mask, seeds, "trained")
    return out
