"""The shipped split lists are the published ones (checked against recorded sha256)."""

import pytest

from fixmatch import split_lists


@pytest.mark.parametrize("name", sorted(split_lists.LISTS))
def test_shipped_list_matches_recorded_sha256_and_length(name):
    expected_sha, expected_lines = split_lists.LISTS[name]
    assert split_lists.sha256(name) == expected_sha
    assert len(split_lists.read_lines(name)) == expected_lines


def test_unknown_list_is_a_clear_error():
    with pytest.raises(split_lists.SplitListError, match="unknown split list"):
        split_lists.path("imagenet_subsets/2percent.txt")
