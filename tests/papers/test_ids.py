"""The arXiv ids a reader pastes or a library file holds, reduced to one spelling."""

import pytest

from papers.ids import arxiv_id, find_arxiv_id, parse_arxiv_ids


@pytest.mark.parametrize(
    "token",
    [
        "2511.04570",
        "2511.04570v2",
        "arXiv:2511.04570",
        "arxiv.org/abs/2511.04570",
        "https://arxiv.org/abs/2511.04570v3",
        "http://www.arxiv.org/pdf/2511.04570",
        "https://arxiv.org/pdf/2511.04570v1.pdf",
        "export.arxiv.org/abs/2511.04570?context=cs",
        "huggingface.co/papers/2511.04570",
        "https://huggingface.co/papers/2511.04570#community",
        "doi.org/10.48550/arXiv.2511.04570",
        "https://doi.org/10.48550/arXiv.2511.04570v2",
        "10.48550/ARXIV.2511.04570",
    ],
)
def test_it_reads_every_accepted_form_as_the_bare_id(token):
    assert arxiv_id(token) == "2511.04570"


def test_it_accepts_four_digit_ids_of_before_2015():
    assert arxiv_id("1412.6980") == "1412.6980"


@pytest.mark.parametrize(
    "token",
    ["2511.0457", "2513.04570", "12511.04570", "2511.045701", "hep-th/9901001", "arxiv.org/list/cs.CL", "SnapKV"],
)
def test_it_refuses_what_is_not_a_new_style_id(token):
    assert arxiv_id(token) is None


def test_it_splits_a_pasted_list_keeping_order_and_naming_the_bad_pieces():
    text = "2511.04570v2, arxiv.org/abs/2511.08892\nnot-an-id  2511.04570 ; huggingface.co/papers/2511.11793\n\n"
    parsed = parse_arxiv_ids(text)
    assert parsed.ids == ("2511.04570", "2511.08892", "2511.11793")
    assert parsed.bad == ("not-an-id",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("arXiv:2511.04570 [cs.CL]", "2511.04570"),
        ("Preprint at https://arxiv.org/abs/2511.04570v2.", "2511.04570"),
        ("arXiv: 2511.08892", "2511.08892"),
        ("10.48550/arXiv.2511.11793", "2511.11793"),
        ("Published in NeurIPS 2023, pages 1234.5678", None),
        ("", None),
    ],
)
def test_it_finds_an_id_inside_a_library_field(text, expected):
    assert find_arxiv_id(text) == expected
