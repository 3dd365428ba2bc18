from klamm.protocol.errors import (ERRORS, ErrorCode, NotLeaderOrFollowerError,
                                   UnknownServerError, error_for, is_retriable)


def test_every_code_maps_to_its_own_exception_with_a_hint() -> None:
    for code in ErrorCode:
        if code is ErrorCode.NONE:
            continue
        exc = error_for(int(code), "detail")
        assert exc.code is code and exc.retriable == ERRORS[code].retriable
        assert code.name in str(exc) and "detail" in str(exc)


def test_retriable_flags_follow_kafka() -> None:
    assert is_retriable(ErrorCode.NOT_LEADER_OR_FOLLOWER)
    assert isinstance(error_for(6), NotLeaderOrFollowerError)
    assert not is_retriable(ErrorCode.INVALID_TOPIC)
    assert not is_retriable(12345)


def test_unknown_codes_become_unknown_server_error_naming_the_code() -> None:
    exc = error_for(9999)
    assert isinstance(exc, UnknownServerError) and "9999" in str(exc)
