"""isomiR typing: hand-made sequences for every type, both ends, combinations; mirtop's own labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from bayesmir import InputError, read_counts
from bayesmir.data.annotations import isomir_annotations
from bayesmir.isomir_types import classify_isomir, isomir_types, normalise_variant, read_reference

FORMATS = Path(__file__).parent / "data" / "formats"
CANONICAL = "TGAGGTAGTAGGTTGTATAGTT"  # hsa-let-7a-5p
HAIRPIN = "TGGGATGAGGTAGTAGGTTGTATAGTTTTAGGGTCACACCCACCACTGGGAGATAACTATACAATCTACTGTCTTTCCTA"  # hsa-let-7a-1


@pytest.mark.parametrize(
    ("read", "shift_5p", "shift_3p", "substitutions", "added", "seed", "label"),
    [
        (CANONICAL, 0, 0, (), "", False, "ref_miRNA"),
        ("ATGAGGTAGTAGGTTGTATAGTT", 1, 0, (), "", True, "iso_5p:-1"),        # 5' extended (templated A)
        ("GAGGTAGTAGGTTGTATAGTT", -1, 0, (), "", True, "iso_5p:+1"),         # 5' trimmed
        ("TGAGGTAGTAGGTTGTATAGTTT", 0, 1, (), "", False, "iso_3p:+1"),       # 3' extended (templated T)
        ("TGAGGTAGTAGGTTGTATAG", 0, -2, (), "", False, "iso_3p:-2"),         # 3' trimmed
        ("TGAGGTAGTAGGTTGTATAGTTAA", 0, 0, (), "AA", False, "iso_add3p:2"),  # precursor has TT there
        ("TGAGGTAGTAGGTTGTATAGTAA", 0, -1, (), "AA", False, "iso_3p:-1,iso_add3p:2"),
        ("TCAGGTAGTAGGTTGTATAGTT", 0, 0, ((2, "G", "C"),), "", True, "iso_snv_seed"),
        ("TGAGGTACTAGGTTGTATAGTT", 0, 0, ((8, "G", "C"),), "", True, "iso_snv_central_offset"),
        ("TGAGGTAGTACGTTGTATAGTT", 0, 0, ((11, "G", "C"),), "", False, "iso_snv_central"),
        ("TGAGGTAGTAGGTTCTATAGTT", 0, 0, ((15, "G", "C"),), "", False, "iso_snv_central_supp"),
        ("AGAGGTAGTAGGTTGTATAGTT", 0, 0, ((1, "T", "A"),), "", False, "iso_snv"),
        ("ATGAGGTAGTAGGTTGTATAGTTTA", 1, 1, (), "A", True, "iso_3p:+1,iso_5p:-1,iso_add3p:1"),
    ],
)
def test_hand_made_types_with_precursor(read, shift_5p, shift_3p, substitutions, added, seed, label):
    kind = classify_isomir(read, CANONICAL, HAIRPIN)
    assert (kind.shift_5p, kind.shift_3p, kind.substitutions, kind.non_templated_3p, kind.seed_shift) == (
        shift_5p, shift_3p, substitutions, added, seed)
    assert kind.type == label


def test_without_precursor_extensions_are_shifts_and_rna_is_read():
    kind = classify_isomir("UGAGGUAGUAGGUUGUAUAGUUAA", CANONICAL)
    assert (kind.shift_3p, kind.non_templated_3p, kind.type) == (2, "", "iso_3p:+2")


def test_canonical_not_in_precursor_raises():
    with pytest.raises(InputError, match="not in the precursor"):
        classify_isomir(CANONICAL, CANONICAL, "ACGTACGTACGTACGTACGTACGTACGT")


def test_computed_types_match_mirtop_variants():
    data = read_counts(FORMATS / "mirtop.gff")
    types = isomir_types(data, precursors=FORMATS / "hairpin.fa")
    assert (types["canonical_source"] == "input").all()
    expected = isomir_annotations(data)["variant"].map(normalise_variant)
    assert types["type"].map(normalise_variant).tolist() == expected.tolist()


def test_reference_fasta_and_most_abundant_proxy():
    reference = read_reference(FORMATS / "mature.fa")
    assert reference["hsa-let-7a-5p"] == CANONICAL
    data = read_counts(FORMATS / "equivalent_long.csv")  # carries no canonical sequences
    from_fasta = isomir_types(data, reference=FORMATS / "mature.fa")
    assert set(from_fasta["canonical_source"]) == {"reference"}
    proxy = isomir_types(data)
    assert set(proxy["canonical_source"]) == {"most_abundant"}
    # here the canonical sequence is also the most abundant one, so the proxy agrees
    assert proxy["type"].tolist() == from_fasta["type"].tolist()
