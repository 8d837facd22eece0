"""Summaries of the upstream upgrade-check tables (oslo.upgradecheck format)."""

from __future__ import annotations

from onestack.drivers.upgradecheck import parse, summary

TABLE = """\
+-----------------------------------------------------------------------+
| Upgrade Check Results                                                 |
+-----------------------------------------------------------------------+
| Check: Cells v2                                                       |
| Result: Success                                                       |
| Details: None                                                         |
+-----------------------------------------------------------------------+
| Check: OVN support for BM provisioning over IPv6 check                |
| Result: Warning                                                       |
| Details: Failed to connect to OVN. Error: Could not retrieve schema   |
|   from tcp:127.0.0.1:6641                                             |
+-----------------------------------------------------------------------+
| Check: Older than N-1 computes                                        |
| Result: Failure                                                       |
| Details: Current Nova version does not support computes older than    |
|   Epoxy but the minimum compute service level in your cell is 66.     |
+-----------------------------------------------------------------------+
"""


def test_parse_reads_every_block_with_wrapped_details() -> None:
    results = parse(TABLE)
    assert [(r.check, r.result) for r in results] == [
        ("Cells v2", "Success"),
        ("OVN support for BM provisioning over IPv6 check", "Warning"),
        ("Older than N-1 computes", "Failure")]
    assert results[0].details == ""
    assert results[1].details == ("Failed to connect to OVN. Error: Could not retrieve "
                                  "schema from tcp:127.0.0.1:6641")


def test_summary_names_only_what_did_not_succeed() -> None:
    text = summary(TABLE)
    assert "Cells v2" not in text
    assert text.startswith("Warning: OVN support for BM provisioning over IPv6 check (Failed")
    assert "; Failure: Older than N-1 computes (Current Nova version" in text


def test_summary_of_an_all_green_table_counts_the_checks() -> None:
    green = TABLE.split("| Check: OVN")[0] + "+---+\n"
    assert summary(green) == "1 of 1 checks passed"


def test_summary_without_a_table_falls_back_to_the_last_lines() -> None:
    assert summary("starting\nTraceback...\nKeyError: 'x'\n", tail=2) == \
        "Traceback... | KeyError: 'x'"
