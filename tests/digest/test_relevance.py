"""Relevance beyond verbatim phrases (digest/ranking/relevance.py, vocabulary.py) and the
evaluation that measures it (digest/ranking/evaluation.py, ``evalranking``)."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from digest.ranking import PaperIndex, Profile
from digest.ranking import evaluation as ev
from digest.ranking.vocabulary import Vocabulary, find_definitions
from tests.factories import paper_doc as doc

FIXTURES = Path(__file__).parents[1] / "fixtures"
RELEVANCE = FIXTURES / "relevance"


def reasons(index: PaperIndex, *topics: str) -> dict[str, str]:
    items = index.rank([Profile(1, topics=topics, max_papers=50)])[1]
    by_id = {p.id: p.arxiv_id for p in index.papers}
    return {by_id[i.paper_id]: i.reason for i in items}


# --------------------------------------------------------------------------- vocabulary


def test_it_finds_acronym_definitions_as_authors_write_them() -> None:
    text = (
        "We study diffusion large language models (dLLMs) and Group Relative Policy Optimization (GRPO). "
        "Results on the (MATH) set and on speech (SD) follow."
    )

    assert dict(find_definitions(text)) == {
        "dLLMs": "diffusion large language models",
        "GRPO": "group relative policy optimization",
    }


def test_it_maps_learned_acronyms_both_ways_and_drops_ambiguous_ones() -> None:
    vocabulary = Vocabulary(
        [
            "Group Relative Policy Optimization (GRPO) trains reasoners.",
            "Masked diffusion language models (MDLMs) decode in parallel.",
            "Visual speech recognition (VSR) reads lips.",
            "Video super resolution (VSR) sharpens frames.",
        ]
    )

    assert [v.terms for v in vocabulary.variants("grpo")] == ["group relative policy optimization"]
    assert [v.terms for v in vocabulary.variants("group relative policy optimization")] == ["grpo"]
    assert [v.terms for v in vocabulary.variants("diffusion language model")] == ["mdlm"]
    assert vocabulary.variants("speech recognition") == []  # VSR means two things: dropped


# --------------------------------------------------------------------------- ranking


def test_it_admits_a_paper_that_names_the_topic_by_its_acronym_and_says_so() -> None:
    index = PaperIndex(
        [
            doc(1, "Faster dLLMs", "Diffusion large language models (dLLMs) decode many tokens at once."),
            doc(2, "Parallel decoding for dLLMs", "We speed up dLLMs with caching."),
            doc(3, "Image diffusion at scale", "A latent diffusion model for photos."),
        ]
    )

    found = reasons(index, "diffusion large language models")

    assert found["2511.00001"] == "matches: diffusion large language models"
    assert found["2511.00002"] == "about diffusion large language models (dLLMs)"
    assert "2511.00003" not in found


def test_it_admits_words_in_another_order_within_one_sentence_but_not_across_sentences() -> None:
    index = PaperIndex(
        [
            doc(1, "Memory at inference", "We compress the KV cache of long prompts."),
            doc(2, "Serving", "The KV cache grows. Compression of images is another matter."),
            doc(3, "Video codecs", "Compression for streaming."),
        ]
    )

    found = reasons(index, "KV cache compression")

    assert found["2511.00001"] == "about KV cache compression (kv cache compression)"
    assert "2511.00003" not in found


def test_it_admits_part_of_a_topic_only_with_the_topics_head_noun() -> None:
    index = PaperIndex(
        [
            doc(1, "Smaller caches", "We prune the KV cache. Its compression saves memory."),
            doc(2, "Block diffusion", "Decoding reuses the KV cache across blocks."),
            doc(3, "Video codecs", "Compression for streaming."),
            doc(4, "Image codecs", "Lossy compression of photos."),
        ]
    )

    found = reasons(index, "KV cache compression")

    assert found == {"2511.00001": "about KV cache compression (kv cache)"}


def test_it_admits_other_words_of_a_one_word_topics_stem_but_not_agent_nouns_or_adjectives() -> None:
    index = PaperIndex(
        [
            doc(1, "Low-bit inference", "Weights are quantized to 4 bits."),
            doc(2, "Quantization formats", "A study of quantization."),
            doc(3, "Prefill and decode", "We split prefill and decode across machines."),
            doc(4, "Decoder-only models", "A decoder stack."),
            doc(5, "A learned quantizer", "The quantizer maps vectors to codes."),
            doc(6, "Reasonable defaults", "Sensible settings, for a reason: we reason about them."),
            doc(7, "Fair comparisons", "A reasonable baseline."),
        ]
    )

    assert reasons(index, "quantization") == {
        "2511.00002": "matches: quantization",
        "2511.00001": "about quantization (quantized)",
    }
    assert reasons(index, "decoding") == {"2511.00003": "about decoding (decode)"}
    assert set(reasons(index, "decoder")) == {"2511.00004"}
    assert reasons(index, "reasoning") == {"2511.00006": "about reasoning (reason)"}


def test_it_names_feedback_evidence_in_content_words_as_authors_mostly_write_them() -> None:
    index = PaperIndex(
        [
            doc(1, "GUI agents on phones", "Agents act.", ("click", "through the screen")),
            doc(2, "GUI agents for desktops", "Agents act.", ("clicking", "through the screen")),
            doc(3, "Grounding GUI agents", "Agents act.", ("clicking", "through menus")),
            doc(4, "Web agents", "Browsing agents.", ("clicking", "through the screen")),
            doc(5, "Protein folding", "Structures of proteins."),
            doc(6, "Weather forecasts", "Forecasting rain with graphs."),
            doc(7, "Speech synthesis", "Voices from text."),
        ]
    )

    # "through" is shared by every GUI paper but says nothing of what they are about;
    # "clicking" is how they mostly write the stem "click".
    assert reasons(index, "GUI agents")["2511.00004"] == "about GUI agents (clicking, screen)"


def test_it_ranks_a_paper_naming_the_topic_in_its_title_first() -> None:
    titled = doc(1, "Hallucination in vision-language models", "We measure how often models invent objects.")
    passing = doc(
        2,
        "Visual question answering",
        "Models answer questions; hallucination happens. Less hallucination here. Hallucination rates drop.",
        ("hallucination", "visual question answering"),
    )
    others = [doc(3 + n, f"Paper {n}", "Language models answer questions.") for n in range(4)]
    index = PaperIndex([passing, titled, *others])

    assert list(reasons(index, "hallucination")) == ["2511.00001", "2511.00002"]


def test_it_ranks_a_paper_about_the_topic_above_one_that_mentions_it_in_passing() -> None:
    about = doc(1, "Mixture of experts routing", "Routing for mixture of experts.", ("mixture of experts",))
    passing = doc(2, "A survey of scaling", "Among others, one mixture of experts model.")
    index = PaperIndex([passing, about])

    assert list(reasons(index, "MoE")) == ["2511.00001", "2511.00002"]


def test_it_gives_an_unrelated_popular_paper_nothing_and_keeps_a_narrow_topic_short() -> None:
    popular = replace(doc(1, "A big model", "Everything about language."), upvotes=900)
    index = PaperIndex([popular, doc(2, "Gaussian splatting for cities", "3D gaussian splatting.")])

    assert list(reasons(index, "gaussian splatting")) == ["2511.00002"]


# --------------------------------------------------------------------------- metrics


def test_it_computes_graded_ndcg_recall_and_precision() -> None:
    grades = {"a": 2, "b": 1, "c": 0, "d": 2}

    assert ev.ndcg(["a", "d", "b"], grades) == pytest.approx(1.0)
    assert ev.ndcg(["c", "b"], grades) < ev.ndcg(["b", "c"], grades) < 1.0
    assert ev.ndcg([], grades) == 0.0
    assert ev.recall(["a", "c"], grades) == pytest.approx(1 / 3)
    assert ev.precision(["a", "b", "c", "x", "y"], grades) == pytest.approx(2 / 5)
    assert ev.ndcg([], {"a": 0}) == 1.0  # nothing relevant: the empty answer is perfect


def copy_fixtures(tmp_path: Path) -> Path:
    shutil.copytree(RELEVANCE, tmp_path / "relevance")
    (tmp_path / ev.POOL).parent.mkdir(parents=True)
    shutil.copy(FIXTURES / ev.POOL, tmp_path / ev.POOL)
    return tmp_path / "relevance"


def test_it_refuses_labels_that_miss_a_paper_or_grade_outside_0_to_2(tmp_path: Path) -> None:
    folder = copy_fixtures(tmp_path)
    path = folder / "labels" / "grpo.json"
    labels = json.loads(path.read_text())
    first = next(iter(labels["grades"]))

    labels["grades"][first] = 3
    path.write_text(json.dumps(labels))
    with pytest.raises(ev.EvaluationError, match="grades must be 0, 1 or 2"):
        ev.load_fixtures(folder)

    del labels["grades"][first]
    path.write_text(json.dumps(labels))
    with pytest.raises(ev.EvaluationError, match="1 pool papers without a grade"):
        ev.load_fixtures(folder)


def test_it_exits_with_one_line_when_the_fixtures_are_missing(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"^no fixtures folder at .*nowhere$"):
        call_command("evalranking", "--fixtures", str(tmp_path / "nowhere"))


@pytest.fixture(scope="module")
def result() -> dict:
    return ev.evaluate(ev.load_fixtures(RELEVANCE))


def test_it_prints_the_evaluation_as_one_json_object(capsys: pytest.CaptureFixture[str], result: dict) -> None:
    call_command("evalranking", "--json")
    printed = json.loads(capsys.readouterr().out)

    assert printed == result
    assert set(printed["rankers"]) == {"shipped", "bm25", "phrase"}
    names = {p["name"] for p in json.loads((RELEVANCE / "personas.json").read_text())}
    for ranker in printed["rankers"].values():
        assert set(ranker["mean"]) == {"ndcg@10", "recall@10", "p@5"}
        assert set(ranker["personas"]) == names
        assert all(set(s) == {"ndcg@10", "recall@10", "p@5"} for s in ranker["personas"].values())


def test_it_keeps_the_phrase_only_reference_as_it_was_shipped(result: dict) -> None:
    """The reference must rank exactly like the ranker before issue 10 did: its figures
    then were measured by this harness at 0.602 mean nDCG@10."""
    assert result["rankers"]["phrase"]["mean"]["ndcg@10"] == pytest.approx(0.602, abs=5e-4)


@pytest.mark.xfail(strict=True, reason="issue 10's quality floor is not reached yet; see README, Relevance")
def test_it_ranks_ahead_of_bm25_on_the_mean_and_within_005_on_every_persona(result: dict) -> None:
    shipped, bm25 = result["rankers"]["shipped"], result["rankers"]["bm25"]

    assert shipped["mean"]["ndcg@10"] > bm25["mean"]["ndcg@10"]
    behind = {
        name: (scores["ndcg@10"], bm25["personas"][name]["ndcg@10"])
        for name, scores in shipped["personas"].items()
        if scores["ndcg@10"] < bm25["personas"][name]["ndcg@10"] - 0.05
    }
    assert behind == {}


def test_it_times_the_rank_stage_alone_without_a_database(capsys: pytest.CaptureFixture[str]) -> None:
    """``benchdigest --rank-only`` ranks synthetic profiles against the fixture day."""
    call_command("benchdigest", "--rank-only", "--subscribers", "300", "--batch-size", "100")
    out = capsys.readouterr().out

    assert "rank only: 300 subscribers, 40 papers in the day, 372 behind them, batches of 100" in out
    assert re.search(r"ranking took \d+\.\d+ s, \d+\.\d+ ms/digest, [1-9][\d.]* papers per digest", out)
