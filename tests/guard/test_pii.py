from __future__ import annotations

import pytest
from stdnum import iban

from services.guard.detectors import scan_text
from services.guard.detectors.pii import find_pii, luhn_valid, ssn_valid


def kinds(text: str) -> list[str]:
    return [h.detector for h in find_pii(text)]


def test_email_but_not_asset_names_or_ssh_remotes():
    assert kinds("write to ana.garcia@uni-heidelberg.de today") == ["pii.email"]
    assert kinds("use icon@2x.png and git@github.com:org/repo.git") == []


@pytest.mark.parametrize(
    "number", ["4539 1488 0343 6467", "5554-1234-5678-9014", "374812345678904", "3530123456789018"]
)
def test_luhn_valid_cards_with_a_known_issuer(number):
    assert kinds(f"card: {number}") == ["pii.payment_card"]


@pytest.mark.parametrize("number", ["4539 1488 0343 6468", "1234 5678 9012 3456", "9999 9999 9999 9995"])
def test_luhn_invalid_or_unknown_issuer_numbers_are_not_cards(number):
    assert kinds(f"ref: {number}") == []


def test_luhn():
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


def test_iban_checked_by_mod_97():
    valid = "DE44 5001 0517 5407 3249 31"
    assert iban.is_valid(valid)
    assert kinds(f"IBAN {valid} please") == ["pii.iban"]
    assert kinds("IBAN DE45 5001 0517 5407 3249 31 please") == []
    assert kinds("GB92NWBK60161331927819") == ["pii.iban"]


def test_role_and_registrar_mailboxes_are_not_personal():
    assert kinds("Registrar Abuse Contact Email: abusecomplaints@markmonitor.com") == []
    assert kinds("abuse-contact@publicdomainregistry.com, hostmaster@example.net") == []
    assert kinds("Registrant Contact Email: wei.zhang@126.com") == ["pii.email"]


def test_register_numbers_are_not_phone_numbers():
    assert kinds("UK Limited Company, (Company number: 03877731)") == []
    assert kinds("Order number 0612 345 6789, shipped") == []
    assert kinds("Call me on 0612 345 6789 tonight") != []


def test_digits_inside_a_hex_digest_are_not_a_card():
    assert kinds("md5sum of the archive is 1a2c4410760818393238faff5d437d18") == []
    assert kinds("card 4539 1488 0343 6467 please") == ["pii.payment_card"]


@pytest.mark.parametrize("ssn", ["000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000"])
def test_ssn_never_issued_ranges_are_rejected(ssn):
    area, group, serial = ssn.split("-")
    assert not ssn_valid(area, group, serial)
    assert kinds(f"SSN {ssn}") == []


def test_valid_ssn_with_dashes_or_after_the_word():
    assert kinds("SSN 536-23-4567") == ["pii.us_ssn"]
    assert kinds("my social security number is 536234567") == ["pii.us_ssn"]
    assert kinds("order 536234567 shipped") == []


def test_phone_numbers_validated_by_numbering_plan():
    assert kinds("call +44 20 7946 0958 or (415) 555-2671") == ["pii.phone_number", "pii.phone_number"]
    assert kinds("on 2024-01-15 we sold 1234567 units") == []


def test_ip_addresses_but_not_versions_or_private_ranges():
    assert kinds("the attacker came from 81.2.69.160") == ["pii.ip_address"]
    assert kinds("upgrade to version 10.2.3.4 on host 192.168.1.10") == []


def test_pii_excerpts_are_masked():
    text = "Jane, card 4539 1488 0343 6467, mail jane.roe@example.org, SSN 536-23-4567"
    findings = scan_text(text)
    assert {f.detector for f in findings} == {"pii.payment_card", "pii.email", "pii.us_ssn"}
    dumped = " ".join(f.excerpt for f in findings)
    for value in ("4539 1488 0343 6467", "jane.roe@example.org", "536-23-4567"):
        assert value not in dumped
    card = next(f for f in findings if f.detector == "pii.payment_card")
    assert card.excerpt.count("6467") == 1 and "[REDACTED]" in card.excerpt
