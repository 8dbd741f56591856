"""A task's exception never carries a resolved secret out of the task (`withhold_secrets`)."""

from __future__ import annotations

import traceback

from celery.exceptions import Reject, Retry

from scheduling.celery.secrets import MASK, withhold_secrets
from scheduling.errors import SecretWithheld

TOKEN = "tok-4f9a1c"


class OwnMessage(Exception):
    """Builds its message from a text attribute, not from args."""

    def __init__(self, token: str) -> None:
        super().__init__("refused")
        self.token = token

    def __str__(self) -> str:
        return f"refused for {self.token}"


class HiddenMessage(Exception):
    """Builds its message from something that is not text (out of the masking's reach)."""

    def __init__(self, token: str) -> None:
        super().__init__("refused")
        self.parts = (token,)

    def __str__(self) -> str:
        return f"refused for {self.parts[0]}"


def raised(error: BaseException) -> BaseException:
    """`error` as an except clause sees it (with a traceback)."""
    try:
        raise error
    except BaseException as caught:
        return caught


def rendered(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


def test_a_message_showing_the_value_is_masked_in_place() -> None:
    error = raised(ValueError(f"401 for Bearer {TOKEN}", 3))
    assert withhold_secrets(error, [TOKEN]) is error
    assert error.args == (f"401 for Bearer {MASK}", 3)
    assert TOKEN not in rendered(error)


def test_the_chain_is_masked_too() -> None:
    try:
        try:
            raise KeyError(TOKEN)
        except KeyError as inner:
            raise RuntimeError("lookup failed") from inner
    except RuntimeError as outer:
        error = outer
    error.add_note(f"while sending {TOKEN}")
    assert withhold_secrets(error, [TOKEN]) is error
    assert TOKEN not in rendered(error)
    assert MASK in rendered(error)


def test_the_longest_value_is_masked_first() -> None:
    error = ValueError("a=abc b=abcdef")
    withhold_secrets(error, ["abc", "abcdef"])
    assert str(error) == f"a={MASK} b={MASK}"


def test_a_retry_and_a_rejection_carry_a_masked_cause() -> None:
    retry = Retry(exc=ValueError(f"busy for {TOKEN}"), when=5)
    assert withhold_secrets(retry, [TOKEN]) is retry
    assert TOKEN not in str(retry)
    rejection = Reject(reason=ValueError(f"bad {TOKEN}"))
    withhold_secrets(rejection, [TOKEN])
    assert TOKEN not in str(rejection.reason)


def test_text_attributes_a_message_is_built_from_are_masked() -> None:
    error = raised(OwnMessage(TOKEN))
    assert withhold_secrets(error, [TOKEN]) is error
    assert str(error) == f"refused for {MASK}"


def test_a_message_out_of_reach_is_replaced_naming_the_class() -> None:
    withheld = withhold_secrets(raised(HiddenMessage(TOKEN)), [TOKEN])
    assert isinstance(withheld, SecretWithheld)
    assert "HiddenMessage" in str(withheld)
    assert TOKEN not in rendered(withheld)


def test_such_a_cause_is_replaced_in_the_chain() -> None:
    error = RuntimeError("the webhook failed")
    error.__cause__ = HiddenMessage(TOKEN)
    assert withhold_secrets(error, [TOKEN]) is error
    assert isinstance(error.__cause__, SecretWithheld)
    assert TOKEN not in rendered(error)


def test_nothing_to_withhold_leaves_the_error_alone() -> None:
    error = ValueError("plain")
    assert withhold_secrets(error, []) is error
    assert withhold_secrets(error, [""]) is error
    assert error.args == ("plain",)
