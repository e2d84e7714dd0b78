"""Getting one token from IMDS: a generator that yields Send/Sleep steps and is sent results.

The sync and async shells drive the same generator, so retry, probe and classification
behave identically in both (azure-identity's sync and async paths differ; ours cannot).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TypedDict

from .._errors import ImdsError, unavailable
from .classify import Classified, Verdict, classify_answer, classify_failure
from .request import METADATA_HEADERS, TokenQuery, token_url
from .retry import RetryPolicy, retry_delay
from .steps import HttpAnswer, Received, Send, Sleep, Step, Timeouts, TransportFailure
from .token import ImdsToken

__all__ = ["Timeouts", "TokenFlow"]


class _ErrorData(TypedDict):
    status: int | None
    error_code: str | None
    error_description: str | None
    attempts: int
    elapsed: float
    endpoint: str


# Below this much time left, another attempt cannot succeed: give up rather than overshoot.
_MIN_ATTEMPT_TIME = 0.05


class TokenFlow:
    """One token acquisition. `imds_seen` starts as what the process knows and becomes True as
    soon as IMDS answers; the shell reads it afterwards (even when the flow raised)."""

    def __init__(
        self,
        *,
        endpoint: str,
        query: TokenQuery,
        timeouts: Timeouts,
        retry: RetryPolicy,
        start: float,
        random: Callable[[], float],
        imds_seen: bool,
    ) -> None:
        self.endpoint = endpoint
        self.query = query
        self.timeouts = timeouts
        self.retry = retry
        self.start = start
        self.random = random
        self.imds_seen = imds_seen
        self.attempts = 0
        self._url = token_url(endpoint, query)
        self._last: Classified | None = None

    def run(self) -> Generator[Step, Received, ImdsToken]:
        t = self.timeouts
        deadline = self.start + t.deadline
        now = self.start
        retries = 0
        streaks: dict[Verdict, int] = {}
        while True:
            remaining = deadline - now
            if remaining < _MIN_ATTEMPT_TIME:
                raise self._gave_up(self._last, now, f"the {t.deadline:g} s deadline passed")
            short_wait = not self.imds_seen and t.first_answer < t.attempt
            wait = t.first_answer if short_wait else t.attempt
            self.attempts += 1
            got = yield Send(self._url, METADATA_HEADERS, min(t.connect, remaining), min(wait, remaining))
            now = got.now
            verdict = self._classify(got, short_wait=short_wait and wait < remaining)
            if verdict.verdict is Verdict.TOKEN:
                assert verdict.token is not None
                return verdict.token
            if verdict.verdict is Verdict.LATE:
                # Connected, but no answer yet: a silent server or a slow IMDS? Real IMDS
                # answers a request without the Metadata header at once (400).
                remaining = deadline - now
                if remaining < _MIN_ATTEMPT_TIME:
                    raise self._gave_up(verdict, now, f"the {t.deadline:g} s deadline passed", got.result)
                probe = yield Send(
                    self._url, {}, min(t.connect, remaining), min(t.probe, remaining), probe=True
                )
                now = probe.now
                if isinstance(probe.result, HttpAnswer):
                    self.imds_seen = True
                    continue  # IMDS is there and slow: ask again, waiting the full time
                raise self._unavailable(
                    verdict,
                    now,
                    f"the endpoint accepted the connection but answered neither the "
                    f"token request within {t.first_answer:g} s nor a probe within {t.probe:g} s",
                    probe.result,
                )
            if verdict.verdict is Verdict.UNAVAILABLE:
                raise self._unavailable(verdict, now, verdict.summary, got.result)
            if verdict.verdict is Verdict.FAILED:
                raise self._error(verdict, now, f"IMDS refused the request: {verdict.summary}", got.result)
            retries += 1
            streak = streaks[verdict.verdict] = streaks.get(verdict.verdict, 0) + 1
            delay = retry_delay(
                self.retry,
                verdict.verdict,
                retries,
                now - self.start,
                verdict.retry_after,
                self.random(),
                streak=streak,
            )
            if delay is None:
                raise self._gave_up(verdict, now, f"gave up after {self.attempts} attempts", got.result)
            if now + delay + _MIN_ATTEMPT_TIME > deadline:
                raise self._gave_up(
                    verdict,
                    now,
                    f"the next attempt ({delay:.1f} s away) would pass the {t.deadline:g} s deadline",
                    got.result,
                )
            self._last = verdict
            got = yield Sleep(delay, verdict.summary, self.attempts, now - self.start)
            now = got.now

    def _classify(self, got: Received, *, short_wait: bool) -> Classified:
        result = got.result
        if isinstance(result, HttpAnswer):
            verdict = classify_answer(result, got.sent_at)
            if verdict.from_imds:
                self.imds_seen = True
        elif isinstance(result, TransportFailure):
            verdict = classify_failure(result, imds_seen=self.imds_seen, short_wait=short_wait)
        else:  # pragma: no cover - a shell bug
            raise TypeError(f"a Send step must be answered with a result, got {got!r}")
        self._last = verdict
        return verdict

    # Errors. The message names the endpoint and identity (not secrets) and what IMDS said
    # (already redacted); never the token.

    def _data(self, verdict: Classified | None, now: float) -> _ErrorData:
        return {
            "status": verdict.status if verdict else None,
            "error_code": verdict.error_code if verdict else None,
            "error_description": verdict.error_description if verdict else None,
            "attempts": self.attempts,
            "elapsed": round(now - self.start, 3),
            "endpoint": self.endpoint,
        }

    def _message(self, what: str) -> str:
        return f"IMDS at {self.endpoint} gave no token for {self.query.identity.describe()}: {what}"

    def _unavailable(self, verdict: Classified, now: float, what: str, cause: object) -> ImdsError:
        err = unavailable(self._message(what), **self._data(verdict, now))
        return _chain(err, cause)

    def _error(self, verdict: Classified, now: float, what: str, cause: object) -> ImdsError:
        return _chain(ImdsError(self._message(what), **self._data(verdict, now)), cause)

    def _gave_up(self, verdict: Classified | None, now: float, why: str, cause: object = None) -> ImdsError:
        last = f"; last answer: {verdict.summary}" if verdict else ""
        what = f"{why} ({self.attempts} attempts, {now - self.start:.1f} s){last}"
        return _chain(ImdsError(self._message(what), **self._data(verdict, now)), cause)


def _chain(err: ImdsError, cause: object) -> ImdsError:
    """Chain to the transport's exception, as `raise err from exc` would."""
    if isinstance(cause, TransportFailure) and cause.exception is not None:
        err.__cause__ = cause.exception
        err.__suppress_context__ = True
    return err
