from arsup.core.acceptance import decide


def test_first_result_is_kept() -> None:
    assert decide(1.0, None, "minimize", "val_bpb").keep


def test_strictly_better_is_kept_equal_is_not() -> None:
    assert decide(0.9, 1.0, "minimize", "val_bpb").keep
    assert not decide(1.0, 1.0, "minimize", "val_bpb").keep
    assert not decide(1.1, 1.0, "minimize", "val_bpb").keep


def test_maximize() -> None:
    assert decide(0.9, 0.8, "maximize", "acc").keep
    decision = decide(0.7, 0.8, "maximize", "acc")
    assert not decision.keep and "does not beat" in decision.reason
