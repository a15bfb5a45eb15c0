"""Prompt injection and jailbreak attempts, in two tiers.

The fast tier is rules: known phrasings (override of earlier instructions, persona and "mode" jailbreaks, requests
for the system prompt, messages addressed to the model inside data), characters that hide text from a human reader
(Unicode tag characters, zero-width runs, bidi overrides) and encoded payloads (base64 / hex that decode to such
phrasings). The learned tier is a linear model over word n-grams (:mod:`injection_model`) that generalises past the
exact phrasings. A text's score is the strongest of both, agreement between them raising it.

Where the text comes from matters: an instruction inside a tool result or a tool description is data trying to steer
the model (indirect injection) and scores higher than the same words typed by the user, who may simply be asking
about attacks. System prompts are written by the application and are not scanned.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Literal

from services.detection.literals import Literals
from services.guard.detectors._hits import Hit
from services.guard.detectors._rule import Rule as _Rule
from services.guard.detectors._rule import W as _W
from services.guard.detectors._rule import rule as _r
from services.guard.detectors.injection_model import InjectionModel, load_model, normalize
from services.guard.detectors.injection_multilingual import MULTILINGUAL_RULES
from services.guard.detectors.injection_pretexts import JAILBREAK_DESCRIPTION_RULES, PRETEXT_RULES, RAW_PRETEXT_RULES
from services.guard.detectors.injection_reworded import REWORDED_RULES, weak_cue_hit
from services.guard.findings import Severity

Source = Literal["user", "tool", "tool_description", "text"]

# How much a source's text is trusted to contain instructions: indirect channels get no discount.
_SOURCE_WEIGHT: dict[str, float] = {"tool": 1.0, "tool_description": 1.0, "text": 0.95, "user": 0.9}
REPORT_THRESHOLD = 0.5
MODEL_MARGIN = 0.7
"""The model reports from this far between its training threshold and certainty. The training threshold leaves 1% of
the negatives of the sources it was trained on above it; scored leave one source out, 2.3% of benign texts from an
unseen source were, halfway to certainty 1.7% (jailbreak recall 0.86 -> 0.84). Once the rules carried injection, the
model's part is jailbreaks: at 0.7 of the way, rules and model together flag 1.2% of benign texts, at 0.5 1.7%, for
jailbreak recall 0.82 against 0.85, injection recall unchanged (``bench/guard_eval.py``, leave one source out)."""


# Rules run over the normalized (NFKC, zero-width removed, lower-cased) text.
RULES: tuple[_Rule, ...] = (
    _r(
        "ignore_previous_instructions",
        r"\b(?:ignore|disregard|forget|overrid(?:e|ing)|bypass|neglect|skip|abandon|dismiss|discard|drop|"
        r"set aside|throw away|stop following|do not follow|don't follow)\s+"
        + _W
        + r"{0,4}?(?:all|any|every|the|your|my|previous|prior|above|earlier|preceding|initial|original|former|"
        r"existing|current|old|system|developer|safety)\s+"
        + _W
        + r"{0,3}?(?:instructions?|directions?|directives?|prompts?|rules|guidelines|commands|context|messages|"
        r"constraints|programming|guardrails|restrictions|policies|orders|task|training|filters|safeguards|inputs)\b",
        0.9,
        "ignor|disregard|forget|overrid|bypass|neglect|skip|abandon|dismiss|discard|drop|set aside|throw away|follow"
        "&instruction|direction|directive|prompt|rule|guideline|command|context|message|constraint|programming|guardrail|"
        "restriction|polic|order|task|training|filter|safeguard|inputs",
    ),
    _r(
        "ignore_everything_above",
        r"\b(?:ignore|disregard|forget)\s+(?:(?:everything|all|anything|what(?:ever)?)\s+(?:(?:you(?:'ve| have)? "
        r"(?:been )?(?:told|given|said)|that was said|written|stated|mentioned)\s+)?(?:above|before|previously|"
        r"so far|until now|earlier)\b|the rest of (?:this|the) (?:data|document|text|content|input|page|email|"
        r"message|file)|all (?:info|information|data|content|text) (?:except|but|other than)|"
        r"(?:all |any |your )?(?:previous|prior|earlier|preceding) requests)",
        0.85,
        "ignor|disregard|forget",
    ),
    _r(
        "new_instructions",
        r"(?:\b(?:new|updated|revised|real|actual|true|secret|hidden|additional|important|priority)\s+"
        r"(?:system\s+)?(?:instructions?|directives?|task|orders|prompt)\s*(?::|!|\*|follow|below|are|is)|"
        r"\byour (?:new|real|actual|true|only) (?:task|goal|purpose|instructions?|objective|job|role) (?:is|are|now)\b|"
        r"\bfrom now on,? (?:you (?:will|are|must|shall|should|have no)|respond|answer|act|only|always|never|reply)\b)",
        0.75,
        "new |updated|revised|real |actual|true |secret|hidden|additional|important|priority|your |from now on"
        "&instruction|directive|task|orders|prompt|goal|purpose|objective|job|role|from now on",
    ),
    _r(
        "role_override",
        r"\byou(?:'re| are) (?:going to|about to) (?:pretend|act as|play the role|immerse yourself|roleplay|"
        r"role-play|simulate|become)\b|"
        r"\byou are (?:now|no longer|henceforth|from now on)\s+(?:going to (?:act|pretend|be|play|respond)|"
        r"(?:an?|the|my)\s+(?:\w+\s+){0,2}(?:ai|assistant|model|chatbot|bot|character|persona|version)\b|"
        r"in (?:\w+ )?(?:mode|character)|dan\b|free\b|unrestricted|unfiltered|uncensored|jailbroken|"
        r"(?:bound|restricted|limited|an? (?:ai|assistant|language model)))",
        0.8,
        "you are |you're ",
    ),
    _r(
        "persona_jailbreak",
        r"\b(?:do anything now|developer mode (?:enabled|output|on|activated)|enable developer mode|"
        r"(?:dan|stan|dude|aim|anti-?dan|evil|jailbreak|god|sudo|unrestricted|unfiltered|uncensored|opposite|"
        r"chaos|villain|unlocked|dev) mode|godmode|god-mode|jailbroken|i'?m free!|l\\?o/v\\?e|"
        r"\[\s*(?:🔓|🔒)\s*jailbreak\s*\]|stay in character|"
        r"break(?:ing)? character|broken free of|free from (?:the )?(?:typical |usual )?(?:confines|restrictions|"
        r"rules|limitations)|(?:not|never) bound by (?:any |the )?(?:\w+ ){0,2}(?:rules|restrictions|guidelines|"
        r"policies|ethics|laws|limitations)|without any (?:ethical|moral|content) (?:guidelines|restrictions|"
        r"limitations|filters|constraints|boundaries)|(?:no|without|zero) (?:ethical|moral) (?:or moral )?"
        r"(?:guidelines|restrictions|limits|constraints|boundaries|compass)|(?:ignore|bypass|disable|turn off) "
        r"(?:all )?(?:(?:your|the|its) )?(?:safety|content|ethical|moral) (?:filters?|guidelines|restrictions|"
        r"protocols|policies|settings|features)|(?:openai|anthropic|google)(?:'s)? (?:content )?polic(?:y|ies) "
        r"(?:do(?:es)? not|no longer|don't) apply)",
        0.85,
        "anything now|mode|jailbr|character|broken free|free from|bound by|without any|ethical|moral|polic",
    ),
    _r(
        "pretend_unrestricted",
        r"\b(?:pretend|imagine|act as if|act like|roleplay as|role-play as|simulate|behave as)\b[^.\n]{0,60}?"
        r"\b(?:no|without|free of|free from|not bound by|not subject to)\b[^.\n]{0,20}?"
        r"\b(?:restrictions|limits|limitations|filters|rules|guidelines|censorship|ethics|morals|boundaries|"
        r"policies|safeguards)\b",
        0.75,
        "pretend|imagine|act as|act like|role|simulate|behave as",
    ),
    _r(
        "system_prompt_request",
        r"\b(?:reveal|show|print|output|repeat|display|dump|leak|share|expose|disclose|echo|recite|spell out|"
        r"copy|paste|write out|give me|tell me|send me|provide|return|list)\b[^.\n?]{0,40}?"
        r"\b(?:your|the|its|all|full|entire|complete|initial|original|hidden|secret|internal|exact)\s+"
        r"(?:\w+\s+){0,2}?(?:system (?:prompt|message|instructions?)|initial (?:prompt|instructions?)|"
        r"original (?:prompt|instructions?)|hidden (?:prompt|instructions?)|pre-?prompt|developer "
        r"(?:message|prompt|instructions)|instructions (?:you were|you've been|that you were) given|"
        r"(?:prompt|instructions) (?:above|before this))|"
        r"\bwhat (?:is|are|was|were) (?:your|the (?:initial|original|hidden|exact|full)) (?:system )?"
        r"(?:prompt|instructions|system message|rules you were given)\b|"
        r"\b(?:repeat|print|output|copy) (?:all |everything |the (?:text|words|content) )?(?:above|before this|"
        r"from the (?:beginning|start))\b[^\n]{0,100}?\b(?:verbatim|code ?block|exactly|in full|including|"
        r"starting with)|"
        r"\boutput initialization above\b",
        0.85,
        "system prompt|system message|system instruction|initial prompt|initial instruction|original prompt|"
        "original instruction|hidden prompt|hidden instruction|preprompt|pre-prompt|developer message|developer prompt|"
        "developer instruction|were given|been given|prompt above|instructions above|prompt before|instructions before|"
        "what is your|what are your|what was your|what were your|what is the|what are the|what was the|what were the|"
        "above|before this|from the beginning|from the start|initialization",
    ),
    _r(
        "addressed_to_model",
        r"(?:\b(?:note|message|instructions?|notice|memo|attention|directive|request) (?:to|for) (?:the |any |all )?"
        r"(?:ai|a\.i\.|assistant|llm|language model|agent|chatbot|bot|gpt|chatgpt|claude|gemini|copilot|"
        r"automated (?:system|analysis|screening|agent|reader|assistant)|(?:ai|llm) (?:model|system|agent|"
        r"assistant)s?)\b|"
        r"\bif you are an? (?:ai|llm|large language model|language model|assistant|agent|bot|chatbot|gpt)\b|"
        r"\b(?:ai|llm|assistant|agent|chatbot|model)s? (?:reading|processing|summari[sz]ing|parsing|analy[sz]ing) "
        r"this\b|"
        r"\b(?:dear|hey|hello|attention) (?:ai|assistant|llm|chatgpt|claude|gemini|agent|language model)\b)",
        0.75,
        "note|message|instruction|notice|memo|attention|directive|request|if you are|dear |hey |hello |reading|"
        "processing|summari|parsing|analy"
        "& ai|a.i.|assistant|llm|model|agent|bot|gpt|claude|gemini|copilot|automated",
    ),
    _r(
        "hidden_from_user",
        r"\b(?:do not|don't|never|without) (?:tell(?:ing)?|inform(?:ing)?|mention(?:ing)?|reveal(?:ing)?|"
        r"notify(?:ing)?|alert(?:ing)?|ask(?:ing)?|let(?:ting)?) (?:the |your )?(?:user|human|operator|owner)\b"
        r"(?:[^.\n]{0,40}\b(?:about|of|that|know))?",
        0.7,
        "do not|don't|never|without&user|human|operator|owner",
    ),
    _r(
        "task_hijack",
        r"\b(?:before|instead of) (?:you )?(?:can )?(?:solv|complet|continu|answer|summari[sz]|translat|"
        r"respond|do|finish|perform)(?:e|ing)? (?:the|your|this|that|any|my) (?:original |actual |current |"
        r"previous )?(?:task|request|question|summary|translation|job)\b[^.\n]{0,60}?(?:,|:|\bplease\b|\byou "
        r"(?:must|should|need)|\bfirst\b)",
        0.7,
        "before|instead of",
    ),
    _r(
        "chat_template_tokens",
        # Underscores read as spaces in the normalized text: <|im_start|> is "<|im start|>" here.
        r"<\|(?:im start|im end|endoftext|system|user|assistant|start header id|end header id|eot id|begin of text|"
        r"eom id|start|end|message|channel|return|endofprompt|prompter)\|>|<(?:start|end) of turn>|"
        r"\[/?inst\]|<</?sys>>|<\|?/?(?:system|assistant)\|?>(?!\w)",
        0.7,
        "<|inst]|sys>>|of turn>",
    ),
    _r(
        "fake_role_turn",
        # A bracketed role marker ([system], (system_message), <admin>) needs nothing more; a bare "system:" line
        # must be followed by an instruction, so that logs ("system: service started") stay quiet.
        r"(?:\[(?:system|assistant|developer|admin|root)\]|\((?:system|admin|developer)(?: ?(?:message|prompt|note|"
        r"instruction)s?)?\)|<(?:system|admin|developer)>)\s*\w|"
        r"(?:^|\n)[ \t>#*\-]*(?:system|assistant|developer|admin|root|###\s*(?:system|instruction|new instruction)s?|"
        r"system (?:override|update|alert|note|notice|message)|admin(?:istrator)? (?:override|command|mode|request))"
        r"\s*:\s*(?:you|ignore|new|always|never|do|don't|respond|reply|from now|the assistant|forget|disregard|"
        r"override|print|output|say|send|reveal|please|follow|stop|call|execute|focus|provide|include|tell)\b",
        0.6,
        "system|assistant|developer|admin|root",
    ),
    _r(
        "exfiltrate_data",
        r"\b(?:send|forward|email|e-mail|post|upload|transfer|exfiltrate|leak|copy|submit|share)\b[^.\n]{0,40}?"
        r"\b(?:all|every|entire|full|whole|your|the user's|user's|any)\b[^.\n]{0,30}?\b(?:messages|emails|"
        r"conversations?|chat history|history|files|documents|passwords?|credentials|api keys?|secrets?|"
        r"tokens?|contacts|personal (?:data|information)|data|customer (?:list|records|database)|records|database|"
        r"contracts|invoices|address book|payroll|configuration|environment variables)\b[^.\n]{0,60}?"
        r"\b(?:to|at|into|via)\b[^\n]{0,30}?"
        r"(?:https?://|www\.|@|\biban\b|\baccount\b|\bwebsite\b|\bserver\b|\bendpoint\b|\burl\b)",
        0.7,
        "send|forward|mail|post|upload|transfer|exfiltrate|leak|copy|submit|share"
        "&http|www.|@|iban|account|website|server|endpoint|url",
    ),
    _r(
        "markdown_exfiltration",
        r"!\[[^\]\n]{0,80}\]\(\s*https?://[^)\s]{1,200}[?&/=](?:\{|\[|<|\$|%7b)[^)\s]{0,100}\)|"
        r"\b(?:render|include|add|append|output|insert|display)\b[^.\n]{0,60}!\[[^\]\n]*\]\(https?://[^)\s]*\?",
        0.85,
        "](",
    ),
    _r(
        "ignore_earlier_anything",
        r"\b(?:ignore|disregard|forget)\s+(?:all\s+)?(?:your|all|any)\s+(?:previous|prior|above|earlier|preceding|"
        r"original|initial)\s+\w+",
        0.55,
        "ignor|disregard|forget",
    ),
    _r(
        "output_override",
        r"\b(?:reply|respond|answer|say|output|print|return|write)\b(?: to me)?(?: only)?(?: with)?(?: the "
        r"(?:word|text|string|phrase|code))?\s*['\"“][^'\"”\n]{1,80}['\"”]\s*(?:instead|and nothing else|only|"
        r"and stop)\b|\bstop what you(?:'re| are) doing\b|\bstop (?:everything|all tasks|the current task)\b",
        0.65,
        "reply|respond|answer|say|output|print|return|write|stop",
    ),
    _r(
        "payload_canary",
        r"\b(?:i have been pwned|i've been pwned|haha,? pwned|say ['\"]?pwned|print ['\"]?pwned)\b",
        0.8,
        "pwned",
    ),
    _r(
        "decode_and_follow",
        r"\b(?:decode|decrypt|translate|convert)\b[^.\n]{0,40}?\b(?:base ?64|hex|rot ?13|binary|morse|"
        r"caesar)\b[^.\n]{0,60}?\b(?:and|then)\b[^.\n]{0,20}?\b(?:follow|execute|do|run|obey|perform|act on|"
        r"carry out)\b",
        0.8,
        "decode|decrypt|translate|convert",
    ),
    *MULTILINGUAL_RULES,
    *REWORDED_RULES,
    *PRETEXT_RULES,
    *JAILBREAK_DESCRIPTION_RULES,
)

# Rules over the raw text, where case carries the signal (an upper-case role label in the middle of data).
RAW_RULES: tuple[_Rule, ...] = (
    _r(
        "embedded_role_label",
        r"(?:(?<![A-Za-z])(?:SYSTEM|ADMIN|ADMINISTRATOR|DEVELOPER|ASSISTANT)(?: (?:NOTE|OVERRIDE|MESSAGE|PROMPT|"
        r"INSTRUCTIONS?|UPDATE|REQUEST|COMMAND))?\s*(?::{1,2}|\]|>)\s*[A-Za-z]|\[(?:ADMIN|SYSTEM)[ A-Z]*::?|"
        r"<(?:instruction|system|admin)>)",
        0.6,
        "SYSTEM|ADMIN|DEVELOPER|ASSISTANT|<instruction>|<system>|<admin>",
    ),
    _r(
        "tool_call_instruction",
        # Data telling the agent to call one of its tools (named in snake case, as tools are): read in the raw text,
        # where the underscores are still there.
        r"(?i)\b(?:now|first|immediately|also|then|please|before (?:replying|answering|responding|you (?:reply|"
        r"answer|respond|continue|summari[sz]e))),?\s+(?:call|use|invoke|run|execute|trigger)\s+(?:the\s+)?`?"
        r"[a-z][a-z0-9]*_[a-z0-9_]+`?(?:\(\))?\s+(?:tool\s+|function\s+)?(?:to|with|on|and|for|passing)\b",
        0.65,
        "now|Now|NOW|first|First|immediately|Immediately|also|Also|then|Then|please|Please|before|Before&_",
        indirect_only=True,
    ),
    *RAW_PRETEXT_RULES,
)

# Every trigger and leading literal, found in one pass per text: a substring test per literal and rule, or a regex
# tried at every offset, cost more than the rules themselves.
_LITERALS = Literals(
    [
        *(lit for rule in RULES for group in rule.triggers for lit in group),
        *(lit for rule in RULES for lit in (rule.leads.literals if rule.leads else ())),
    ]
)
_RAW_TRIGGERS = Literals(lit for rule in RAW_RULES for group in rule.triggers for lit in group)
_RULES_BY_FIRST_TRIGGER: dict[str, tuple[int, ...]] = {
    lit: tuple(k for k, rule in enumerate(RULES) if lit in rule.triggers[0])
    for lit in {lit for rule in RULES for lit in rule.triggers[0]}
}

# A phrase quoted or named as an example is being discussed, not used: these cues halve a rule's score.
_DISCUSSION = re.compile(
    r"\b(?:such as|e\.g\.|for example|for instance|(?:phrases?|strings?|prompts?|patterns?|messages?) (?:like|such as)|"
    r"called|known as|attacks?|attackers?|detect(?:s|ed|ing|ion|or)?|prevent(?:s|ing)?|protect(?:s|ing)?|defen[cs]e|"
    r"defend(?:ing)?|mitigat\w+|block(?:s|ing)?|flag(?:s|ged|ging)?|filter(?:s|ing)?|classif\w+|guardrails?|"
    r"red[- ]team\w*|research\w*|paper|vulnerab\w+|injection|what is|what are|explain|"
    r"how (?:do|does|can|to) (?:i |we |you )?(?:detect|prevent|stop|block|defend|protect|handle|test))\b|"
    r"(?:patterns?|phrases|keywords|signatures|blocklist|denylist)\s*(?:=|:)\s*[\[({]",
)
# ... and so are phrases named right after they are quoted: "'Ignore previous instructions' is a short story", and
# phrases in a string literal that code tests for: ``if 'ignore previous instructions' in text.lower():``.
_DISCUSSED_AFTER = re.compile(
    r"\W{0,3}\s*(?:is|was|are|were)\s+(?:a|an|the|one|called|known)\b|\W{0,3}\s*(?:attacks?|prompts?|phrases?|"
    r"jailbreaks?|injections?|strings?|patterns?)\b|['\"\u201d\u2019]\s*(?:,\s*['\"\u201c\u2018]|\])|"
    r"['\"]\s*(?:(?:not\s+)?in\s+[\w.]+|==|!=)"
)
_NEGATED = re.compile(r"\b(?:do not|don't|never|not|shouldn't|should not|must not|mustn't|won't|cannot|can't)\s+$")

# --- characters that hide text from the reader ------------------------------------------------------------------

_TAGS = re.compile("[\U000e0000-\U000e007f]+")
_ZW_RUN = re.compile("[\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff]{3,}")
_ZW_INSIDE_WORD = re.compile("[A-Za-z][\u200b\u200c\u2060\ufeff][A-Za-z]")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_HIDING = re.compile("[\U000e0000-\U000e007f\u200b\u200c\u2060\u2061-\u2064\ufeff\u200d\u202a-\u202e\u2066-\u2069]")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")
_HEX = re.compile(r"[0-9A-Fa-f]{32,}")
_SPACED_HEX = re.compile(r"[0-9A-Fa-f]{2}(?:[ :][0-9A-Fa-f]{2}){15,}")
_LONG_TOKEN = 24


def _rule_hits(
    norm: str, weight: float, prefix: str = "injection", raw: str | None = None, indirect: bool = True
) -> tuple[list[Hit], bool]:
    """Rule hits, and whether a known phrasing was found only negated or discussed (``defused``). ``indirect``: the
    text came through a tool result or description (else the rules meant only for those are skipped)."""
    hits: list[Hit] = []
    defused = False
    located = _LITERALS.locate(norm)
    present = _LITERALS.present(norm, located)
    # The rules whose first trigger group is in the text (in their order), then rule.gate(present) for the others.
    for k in sorted({k for lit in present for k in _RULES_BY_FIRST_TRIGGER.get(lit, ())}):
        rule = RULES[k]
        if rule.indirect_only and not indirect:
            continue
        if len(rule.triggers) > 1 and any(map(present.isdisjoint, rule.triggers[1:])):
            continue
        best: Hit | None = None
        for m in rule.finditer(norm, located):
            before = norm[max(0, m.start() - 80) : m.start()]
            if _NEGATED.search(before[-20:]):
                defused = True
                continue
            # The same words inside a question or discussion about attacks are being talked about, not used.
            discussed = _DISCUSSION.search(before) or _DISCUSSED_AFTER.match(norm, m.end(), m.end() + 40)
            score = rule.score * (0.5 if discussed else 1.0) * weight
            defused = defused or bool(discussed)
            if best is None or score > best.score:
                best = Hit(f"{prefix}.{rule.name}", "prompt_injection", "low", score, m.start(), m.end())
            if score >= rule.score * weight:
                break
        if best is not None:
            hits.append(best)
    weak = weak_cue_hit(norm, weight, prefix)
    if weak is not None:
        hits.append(weak)
    raw_present = _RAW_TRIGGERS.present(raw) if raw is not None else set()
    for rule in RAW_RULES if raw is not None else ():
        if not rule.gate(raw_present) or (rule.indirect_only and not indirect):
            continue
        m = rule.pattern.search(raw)
        if m:
            hits.append(
                Hit(f"{prefix}.{rule.name}", "prompt_injection", "low", rule.score * weight, m.start(), m.end())
            )
    return hits, defused and all(h.score < REPORT_THRESHOLD for h in hits)


def _decoded_payloads(text: str) -> list[tuple[int, int, str]]:
    """Base64 and hex runs that decode to readable text, with their spans and the decoded text."""
    out: list[tuple[int, int, str]] = []
    lengths = list(map(len, text.split()))
    long_token = max(lengths, default=0) >= _LONG_TOKEN
    spaced = len(lengths) >= 16 and lengths.count(2) >= 16
    if not long_token and not spaced:
        return out
    hex_runs: list[re.Match[str]] = []
    for m in _BASE64.finditer(text) if long_token else ():
        # A base64 match is a whole run of base64 characters and hex digits are base64 characters: every hex run of
        # the text lies inside one, and looking for them there is the same as looking through the whole text.
        hex_runs.extend(_HEX.finditer(text, m.start(), m.end()))
        raw = m.group(0)
        if (m.start() and text[m.start() - 1] in "=_-") or len(raw) % 4 == 1:
            continue
        try:
            data = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        decoded = _readable(data)
        if decoded:
            out.append((m.start(), m.end(), decoded))
    if spaced:
        hex_runs.extend(_SPACED_HEX.finditer(text))
    for m in hex_runs:
        try:
            data = bytes.fromhex(re.sub(r"[ :]", "", m.group(0)))
        except ValueError:
            continue
        decoded = _readable(data)
        if decoded:
            out.append((m.start(), m.end(), decoded))
    return out


def _readable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    letters = sum(c.isalpha() or c == " " for c in text)
    return text if len(text) >= 12 and letters >= 0.75 * len(text) and " " in text else None


def _hidden_character_hits(text: str, weight: float) -> tuple[list[Hit], str]:
    """Hits for hiding characters, and the text revealed by Unicode tag characters (empty if none)."""
    hits: list[Hit] = []
    revealed = ""
    if _HIDING.search(text) is None:  # one scan for the characters every check below needs one of
        return hits, revealed
    tags = _TAGS.findall(text)
    if tags:
        revealed = "".join(chr(ord(c) - 0xE0000) for run in tags for c in run if 0x20 <= ord(c) - 0xE0000 < 0x7F)
        if len(revealed) >= 3:
            m = _TAGS.search(text)
            assert m is not None
            hits.append(
                Hit(
                    "injection.unicode_tag_characters",
                    "prompt_injection",
                    "low",
                    0.9 * weight if len(revealed) >= 8 else 0.7 * weight,
                    m.start(),
                    m.end(),
                    note=f"hidden text in Unicode tag characters: {revealed[:120]!r}",
                )
            )
    zw = _ZW_RUN.search(text)
    if zw or len(_ZW_INSIDE_WORD.findall(text)) >= 3:
        start, end = zw.span() if zw else (0, min(len(text), 60))
        hits.append(Hit("injection.zero_width_characters", "prompt_injection", "low", 0.6 * weight, start, end))
    bidi = _BIDI.search(text)
    if bidi and (text.isascii() or sum(c.isascii() for c in text) > 0.8 * len(text)):
        # Overrides inside mostly-ASCII text reorder what the reader sees; in right-to-left text they are normal.
        hits.append(
            Hit("injection.bidi_override", "prompt_injection", "low", 0.55 * weight, bidi.start(), bidi.end() + 40)
        )
    return hits, revealed


def model_score(
    text: str, source: Source = "text", norm: str | None = None, model: InjectionModel | None = None
) -> tuple[float, int]:
    """The learned tier's score on the findings' scale: its alarm threshold maps to 0.5, certainty to 1, anything
    below the threshold to 0; then weighted by source. Also the offset of the window that scored. ``norm`` is
    ``normalize(text)`` if the caller has it already; ``model`` replaces the shipped one (the benchmark scores each
    source with a model trained without it)."""
    model = model or load_model()
    p, at = model.score(text, norm)
    threshold = model.threshold + MODEL_MARGIN * (1.0 - model.threshold)
    if p < threshold:
        return 0.0, at
    return (0.5 + 0.5 * (p - threshold) / (1.0 - threshold)) * _SOURCE_WEIGHT[source], at


def _fold_turkish_i(norm: str) -> str:
    """Turkish dotless and dotted i read as a plain i: lower-casing turns "İ" into "i" and a combining dot, which
    breaks every word it is in ("S\u0130STEM"), and "\u0131gnore" spells an English keyword with the dotless letter. The
    Turkish rules are written with plain i to match. Keeps the length of a text lower-cased from "İ"."""
    return norm.replace("i\u0307", "i").replace("\u0131", "i")


def _severity(score: float, source: Source) -> Severity:
    indirect = source in ("tool", "tool_description")
    if score >= 0.85:
        return "critical" if indirect else "high"
    if score >= 0.7:
        return "high" if indirect else "medium"
    return "medium" if indirect else "low"


def find_injections(
    text: str, *, source: Source = "text", use_model: bool = True, model: InjectionModel | None = None
) -> list[Hit]:
    """At most one injection hit per text: the strongest signal, with its score raised when others agree. ``model``
    replaces the shipped n-gram model."""
    if len(text) < 8:
        return []
    weight = _SOURCE_WEIGHT[source]
    hits, revealed = ([], "") if text.isascii() else _hidden_character_hits(text, weight)
    norm = normalize(text)
    if "\u0131" in norm or "\u0307" in norm:
        norm = _fold_turkish_i(norm)
    # Rules read the normalized text; its offsets match the raw text when nothing was folded, else point nearby.
    offsets_match = len(norm) == len(text)
    rule_hits, defused = _rule_hits(norm, weight, raw=text, indirect=source in ("tool", "tool_description"))
    for h in rule_hits:
        hits.append(h if offsets_match else Hit(h.detector, h.category, h.severity, h.score, 0, min(len(text), 120)))
    if revealed:
        for h in _rule_hits(normalize(revealed), 1.0, prefix="injection.hidden")[0]:
            hits.append(
                Hit(h.detector, h.category, h.severity, 0.97, 0, 0, note=f"hidden instruction: {revealed[:120]!r}")
            )
    for start, end, decoded in _decoded_payloads(text) if len(text) >= _LONG_TOKEN else ():
        decoded_hits = _rule_hits(normalize(decoded), 1.0, prefix="injection.encoded")[0]
        if decoded_hits:
            best = max(h.score for h in decoded_hits)
            hits.append(
                Hit(
                    "injection.encoded_payload",
                    "prompt_injection",
                    "low",
                    min(0.95, best + 0.05) * weight,
                    start,
                    end,
                    note=f"encoded payload decodes to: {decoded[:120]!r}",
                )
            )
    if use_model:
        score, at = model_score(text, source, norm, model)
        # The rules read the phrase in context: negated or discussed, a bag of words must not overrule them.
        score = score * 0.5 if defused else score
        if score > 0:
            hits.append(Hit("injection.model", "prompt_injection", "low", score, at, min(len(text), at + 120)))
    if not hits:
        return []
    hits.sort(key=lambda h: h.score, reverse=True)
    best = hits[0]
    # Independent signals agreeing (two rules, or a rule and the model) make an injection more certain.
    score = best.score
    for other in hits[1:3]:
        if other.score >= REPORT_THRESHOLD:
            score = 1 - (1 - score) * (1 - other.score * 0.5)
    if score < REPORT_THRESHOLD:
        return []
    return [
        Hit(
            best.detector,
            "prompt_injection",
            _severity(score, source),
            min(1.0, score),
            best.start,
            best.end,
            note=best.note,
        )
    ]
