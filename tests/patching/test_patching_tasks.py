"""Tasks and the normalised logit-difference metric."""

import pytest
import torch

from workbench.patching.tasks import LogitDiffMetric, Task, check_task, logit_diff, make_metric, random_task


def test_task_rejects_unequal_lengths_and_equal_answers():
    # our check, or jaxtyping's runtime check of the shapes (when on), which fires first
    with pytest.raises((ValueError, TypeError), match=r"same token length|parameter 'corrupted'"):
        Task(
            "t",
            torch.zeros(2, 3, dtype=torch.long),
            torch.zeros(2, 4, dtype=torch.long),
            torch.tensor([1, 2]),
            torch.tensor([2, 1]),
        )
    with pytest.raises(ValueError, match="same correct and wrong"):
        Task(
            "t",
            torch.zeros(2, 3, dtype=torch.long),
            torch.zeros(2, 3, dtype=torch.long),
            torch.tensor([1, 2]),
            torch.tensor([1, 3]),
        )


def test_metric_is_one_on_clean_zero_on_corrupted(tiny):
    task = random_task(50, n=3, seq_len=5)
    metric = make_metric(tiny, task)
    assert float(metric(tiny(task.clean))) == pytest.approx(1.0, abs=1e-5)
    assert float(metric(tiny(task.corrupted))) == pytest.approx(0.0, abs=1e-5)
    last = tiny(task.clean)[:, -1]
    torch.testing.assert_close(
        logit_diff(last, task.correct, task.wrong),
        last.gather(1, task.correct[:, None])[:, 0] - last.gather(1, task.wrong[:, None])[:, 0],
    )


def test_metric_refuses_a_corruption_that_changes_nothing():
    with pytest.raises(ValueError, match="divide by zero"):
        LogitDiffMetric(torch.tensor([1]), torch.tensor([2]), 0.5, 0.5)


@pytest.mark.embedded
def test_embedded_tasks_have_equal_lengths_single_token_answers_and_the_model_does_them(embedded):
    from workbench.patching.tasks import antonym_task, capital_task, ioi_task

    for build in (ioi_task, capital_task, antonym_task):
        task = build(embedded, 4)
        assert task.clean.shape == task.corrupted.shape
        check = check_task(embedded, task)
        assert check.clean_accuracy >= 0.5, check.summary()
        m = make_metric(embedded, check.kept)
        assert m.ld_clean > 0 > m.ld_corrupted
