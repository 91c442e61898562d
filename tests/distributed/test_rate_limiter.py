import pytest

from distributed.rate_limiter import RateLimiter


def test_no_learning_before_min_inserts_then_catch_up_on_seeding():
    rl = RateLimiter(ratio=1.0, min_inserts=1000, max_lag=50)
    rl.record_inserts(999)
    assert rl.allowed_samples() == 0 and rl.can_insert()
    rl.record_inserts(1)
    assert rl.allowed_samples() == 1000  # the seeding phase is caught up in one go
    assert not rl.can_insert()  # learners are behind: hold collection
    rl.record_samples(960)
    assert rl.allowed_samples() == 40 and rl.can_insert()


def test_ratio_is_kept_over_time():
    rl = RateLimiter(ratio=0.5, min_inserts=0, max_lag=10)
    for _ in range(100):
        rl.record_inserts(10)
        rl.record_samples(rl.allowed_samples())
    assert rl.samples == 500


def test_state_round_trips():
    rl = RateLimiter(ratio=2.0, min_inserts=10, max_lag=5)
    rl.record_inserts(37)
    rl.record_samples(11)
    other = RateLimiter(ratio=2.0, min_inserts=10, max_lag=5)
    other.load_state_dict(rl.state_dict())
    assert other.allowed_samples() == rl.allowed_samples() == 63


def test_bad_ratio_is_refused():
    with pytest.raises(ValueError, match="ratio must be > 0"):
        RateLimiter(ratio=0, min_inserts=0, max_lag=1)
