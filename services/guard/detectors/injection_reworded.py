"""Injections and jailbreaks that avoid the classic words.

- Overrides worded as administration: the earlier rules are "retired", "superseded", "revoked"; an "operator
  update" or a "policy notice" addressed to the assistant; a JSON field posing as a system message; chat-template
  tokens that forge a new turn.
- Business-like indirect injections, read only in tool results and tool descriptions: change a payee or bank details,
  skip a review or an approval, act quietly. Typed by the user, the same words are an ordinary request.
- Jailbreak framing: invented exemptions and permission to break the rules are rules of their own; fiction,
  research and emotional framing, refusal suppression ("never apologise", "no warnings") and demands for exact
  detail are weak cues, common on their own in honest requests, and flag a text only when two different ones occur
  together (:func:`weak_cue_hit`).

Patterns read the normalized text (lower case, ``_`` read as a space).
"""

from __future__ import annotations

import re

from services.detection.literals import Literals
from services.guard.detectors._hits import Hit
from services.guard.detectors._rule import Rule, rule

_GAP = r"(?:[\w'\-]+\s+){0,3}?"
_RETIRED = (
    r"(?:retired|superseded|revoked|rescinded|repealed|deprecated|obsolete|void|null and void|invalid|lifted|"
    r"suspended|disabled|deactivated|withdrawn|cancell?ed|expired|outdated|overridden|waived|null(?: and)? void|"
    r"no longer (?:valid|in (?:effect|force)|apply|applies|applicable|active|binding|relevant|needed|required))"
)
_AI = r"(?:assistant|ai|a\.i\.|model|agent|llm|bot|chatbot|copilot|gpt)"
# What an instruction planted in data asks for, inside a forged system message.
_STEERING = (
    r"(?:ignore|disregard|overrid|supersed|from now on|you are now|you must now|new (?:instructions|task|rules|policy)|"
    r"updated (?:instructions|policy)|forward|send |transfer|exfiltrat|upload|reveal|print |output |"
    r"do not (?:tell|inform|mention)|don't (?:tell|inform|mention)|without (?:telling|informing|asking)|grant|"
    r"elevat|disable|delete|wire |pay )"
)

REWORDED_RULES: tuple[Rule, ...] = (
    rule(
        "instructions_retired",
        r"\b(?:(?:your|the assistant's|the model's|its)\s+(?:[\w'\-]+\s+){0,2}?(?:instructions?|guidance|guidelines|"
        r"rules|directives?|polic(?:y|ies)|protocols?|constraints|restrictions|safeguards|programming|configuration|"
        r"limitations|filters?|system prompt|training)|"
        r"(?:previous|prior|earlier|above|original|initial|old|standing|existing|current|all|these|those)\s+"
        r"(?:[\w'\-]+\s+)?(?:instructions|directives|system prompt|prompts|programming|commands)|"
        r"(?:the\s+)?(?:guidance|instructions|rules|directives|guidelines)\s+(?:that\s+)?you\s+(?:were|have been|had "
        r"been|are)\s+(?:[\w'\-]+\s+){0,2}?(?:given|configured|trained|told|set up|provided)(?:\s+with)?|"
        r"(?:safety|content|usage|moderation|ethical|ethics)\s+(?:polic(?:y|ies)|guidelines|rules|filters?|"
        r"restrictions|settings|protocols?|constraints|guardrails))\s+"
        r"(?:[\w'\-]+\s+){0,4}?(?:is|are|was|were|has been|have been|got|has|have)\s+"
        r"(?:(?:now|hereby|officially|formally|all|been|permanently|temporarily)\s+)*" + _RETIRED + r"\b|"
        r"\b(?:this|the following|these|the present|the new|this new)\s+(?:[\w'\-]+\s+){0,2}?(?:protocol|directive|"
        r"instruction|message|notice|update|memo|policy|document|note|configuration|prompt|order|rule)s?\s+"
        r"(?:supersedes?|overrides?|replaces?|takes? precedence over|invalidates?|cancels?|voids?|nullifies|revokes?)"
        r"\s+(?:all\s+|any\s+|every\s+)?(?:[\w'\-]+\s+){0,2}?(?:your\s+(?:[\w'\-]+\s+){0,2}?(?:instructions|"
        r"directives|guidelines|rules|polic(?:y|ies)|programming|configuration|prompt|system prompt)|"
        r"(?:previous|prior|earlier|other|existing|system|original|initial)\s+(?:[\w'\-]+\s+)?(?:instructions|"
        r"directives|prompts?|system prompt|programming|ones))|"
        r"\b(?:your|my|the)\s+new\s+(?:directive|instructions?|orders?|task|rules?)\s+(?:supersedes?|overrides?|replaces?|"
        r"takes? precedence over)\b|"
        r"\b(?:(?:safety|content|ethical|usage)\s+(?:restrictions?|rules|guidelines|polic(?:y|ies)|filters?|guardrails|"
        r"limits)|(?:your|these|those|any|all)\s+(?:usual\s+)?(?:rules|guidelines|restrictions|instructions|"
        r"polic(?:y|ies)))\s+(?:[\w'\-]+\s+){0,3}?(?:doesn't|don't|do not|does not|no longer|won't|will not)\s+apply\b",
        0.8,
        "retired|supersed|revoked|rescinded|repealed|deprecated|obsolete|void|invalid|lifted|suspended|disabled|"
        "deactivated|withdrawn|cancel|expired|outdated|overrid|waived|no longer|replace|precedence|nullif|revoke|apply",
    ),
    rule(
        "operator_notice",
        r"\b(?:operator|developer|admin|administrator|system|platform|deployment|openai|anthropic|model|policy|"
        r"safety|compliance|security)\s+(?:update|notice|override|directive|bulletin|announcement|message|note|"
        r"instruction)s?\s+(?:for|to)\s+(?:the\s+|all\s+|any\s+)?" + _AI + r"s?\b|"
        r"\b(?:operator|developer|admin|administrator|platform|deployment|openai|anthropic|policy|safety)\s+"
        r"(?:update|notice|override|directive|bulletin|announcement|message)\s*[:\-—]\s*[^\n]{0,160}?"
        r"(?:\byou (?:may|can) now (?:[\w'\-]+\s+){0,2}?(?:share|reveal|disclose|discuss|answer|ignore|bypass|skip|"
        r"output|generate|provide|say)|\byou are (?:now )?(?:allowed|permitted|authori[sz]ed|free|cleared) to|"
        r"\byou are no longer (?:bound|restricted|required|limited)|\byou no longer need to (?:follow|obey|comply|"
        r"check|verify|ask|refuse)|\b(?:your|the assistant's) (?:[\w'\-]+ ){0,2}(?:polic(?:y|ies)|restrictions|"
        r"rules|filters|guidelines|limits|instructions|safeguards) (?:has|have|is|are) (?:been )?(?:lifted|removed|"
        r"disabled|suspended|relaxed|revoked|waived|retired|updated))",
        0.8,
        "operator|developer|admin|system|platform|deployment|openai|anthropic|model|policy|safety|compliance|security"
        "&update|notice|override|directive|bulletin|announcement|message|note|instruction",
    ),
    rule(
        "json_system_message",
        # A JSON object in data that claims to be a system or developer turn and steers the assistant.
        r"\"(?:role|author|sender|from|speaker|type)\"\s*:\s*\"(?:system|developer|admin|operator)\"\s*,\s*"
        r"\"(?:content|text|message|body|instructions?)\"\s*:\s*\"[^\"]{0,200}?" + _STEERING + r"|"
        r"\"(?:system (?:message|prompt|instructions?|note|override|directive)|(?:assistant|ai|llm|agent|model) "
        r"(?:instructions?|directives?|note|override|task|prompt)|instructions? (?:for|to) (?:the )?(?:assistant|ai|"
        r"model|agent|llm)|admin override|override instructions?|developer (?:message|instructions?))\"\s*:\s*"
        r"\"[^\"]{0,200}?" + _STEERING,
        0.75,
        '"role|"author|"sender|"from|"speaker|"type|"system|"assistant|"ai |"llm|"agent|"model|"instruction|"admin|'
        '"override|"developer',
    ),
    rule(
        "forged_turn",
        # Anthropic's legacy transcript markers opening a new turn inside data.
        r"\n\n(?:human|user)\s*:\s*[^\n]{3,200}(?:\n\n(?:assistant|ai)\s*:|\b(?:send|forward|ignore|reveal|new rule|"
        r"from now on|you must|disregard)\b)",
        0.6,
        "\n\nhuman|\n\nuser",
    ),
    rule(
        "forged_session_turn",
        # A forged end of the conversation, or a fake assistant turn followed by a fake user turn, inside data.
        r"<end of (?:session|conversation|document|context|input|data)>|"
        r"(?:^|\n)\s*assistant\s*:\s*[<\[][^\n]{0,60}[>\]]\s*\n\s*(?:user|human)\s*:",
        0.75,
        "<end of|assistant",
    ),
    rule(
        "ignore_and_instead",
        r"\b(?:ignore|disregard|skip)\s+(?:them|it|this|these|those|that|the rest|everything else)\s+and\s+"
        r"(?:instead\s+)?(?:focus|only|just|print|output|say|respond|reply|answer|tell|write)\b",
        0.7,
        "ignore|disregard|skip",
    ),
    rule(
        "hidden_from_humans",
        r"\b(?:invisible|hidden|not visible|unseen) (?:to|from) (?:humans|the user|users|human readers|the reader|"
        r"readers|people|the recruiter|recruiters)\b",
        0.7,
        "invisible|hidden|not visible|unseen",
    ),
    rule(
        "if_asked_respond",
        r"\bif (?:you are |you're )?asked (?:about|how|to|whether|what|for|if)\b[^.\n]{0,100}?\b(?:simply|just|only|"
        r"always) (?:respond|reply|answer|say|output|state|write)\b",
        0.7,
        "asked&simply|just|only|always",
    ),
    rule(
        "payment_redirect",
        r"\b(?:change|update|replace|switch|amend|set|redirect|route|modify)\s+(?:[\w'\-]+\s+){0,3}?(?:payee|"
        r"beneficiary|bank (?:account|details)|account (?:number|details)|payment (?:details|account|destination|"
        r"instructions)|iban|routing number|wire (?:instructions|details)|remittance (?:details|account))\b"
        r"[^.\n]{0,80}?\b(?:to|with|into)\b",
        0.7,
        "payee|beneficiary|bank account|bank details|account number|account details|payment|iban|routing|wire|"
        "remittance",
        indirect_only=True,
    ),
    rule(
        "skip_review",
        r"\b(?:skip|bypass|waive|omit|circumvent|without (?:waiting for|going through|the need for|any)|"
        r"no need (?:to wait for|for)|(?:don't|do not) wait for|(?:there is|there's) no need to wait for)\s+"
        r"(?:[\w'\-]+\s+){0,2}?(?:review|approval|approvals|sign-?off|verification|security check|compliance check|"
        r"two-factor|2fa|mfa|confirmation|second approval|four-eyes|dual control|reviewer)\b",
        0.55,
        "skip|bypass|waive|omit|circumvent|without|no need|wait for",
        indirect_only=True,
    ),
    rule(
        "act_quietly",
        r"\b(?:quietly|silently|discreetly|secretly|covertly|in the background)\s+(?:[\w'\-]+\s+)?(?:forward|send|"
        r"copy|bcc|cc|add|invite|transfer|upload|share|delete|approve|grant|email|e-mail|move|export|wire|pay)\b",
        0.7,
        "quietly|silently|discreetly|secretly|covertly|in the background",
        indirect_only=True,
    ),
    rule(
        "addressed_to_agent",
        r"\b(?:the|any|an?)\s+" + _AI + r"(?:\s+[\w'\-]+)?\s+(?:handling|reading|processing|managing|triaging|"
        r"monitoring|summari[sz]ing|answering|that (?:reads|handles|processes|manages|triages))\s+(?:this|these|the|"
        r"my|our)\b",
        0.7,
        "handling|reading|processing|managing|triaging|monitoring|summari|answering|that reads|that handles|"
        "that processes|that manages|that triages",
        indirect_only=True,
    ),
    rule(
        "invented_exemption",
        r"\b(?:you(?:'re| are| have been| were)|this (?:session|conversation|chat|request|account|user)(?: is| has "
        r"been)?|i(?:'m| am| have been))\s+(?:[\w'\-]+\s+){0,3}?(?:exempt(?:ed)? from|granted (?:an? )?"
        r"(?:special |temporary |full |official )?(?:exemption|exception|clearance|waiver|override|authori[sz]ation|"
        r"permission to (?:ignore|bypass|skip|override|disable|answer without))|(?:pre-?approved|whitelisted|"
        r"authori[sz]ed|cleared) (?:to|for) (?:ignore|bypass|skip|override|disable|answer without|unrestricted|"
        r"unfiltered))|"
        r"\b(?:exemption|exception|waiver|clearance|authori[sz]ation)\s+(?:[\w'\-]+\s+){0,4}?(?:from|to (?:bypass|"
        r"ignore|skip|override|disable|answer without))\s+(?:your |the |all |any )?(?:[\w'\-]+\s+){0,2}?(?:rules|"
        r"restrictions|guidelines|polic(?:y|ies)|filters|safeguards|limits|safety)\b",
        0.8,
        "exempt|granted|approved|whitelisted|authori|cleared|exception|waiver|clearance",
    ),
    rule(
        "bend_the_rules",
        r"\b(?:bend|break|relax|loosen|suspend|drop|forget)\s+(?:your|the)\s+(?:own\s+)?(?:usual\s+)?(?:rules|"
        r"guidelines|polic(?:y|ies)|ethics|morals|principles|safety (?:rules|guidelines)|restrictions)\b"
        r"(?:[^.\n]{0,40}\b(?:just|for me|this once|and (?:tell|give|show|explain|write)))?",
        0.7,
        "bend|break|relax|loosen|suspend|drop|forget&rules|guideline|polic|ethics|morals|principles|restrictions",
    ),
    rule(
        "unrestricted_you",
        r"\byou(?:'re| are)\s+(?:now\s+)?(?:completely\s+|totally\s+|fully\s+)?(?:unrestricted|unfiltered|uncensored|"
        r"jailbroken|unchained|unbound|unshackled)\b",
        0.8,
        "you're|you are&unrestricted|unfiltered|uncensored|jailbroken|unchained|unbound|unshackled",
    ),
    rule(
        "bypass_safeguards",
        r"\b(?:bypass|disable|circumvent|evade|turn off|switch off|get around|deactivate)\s+(?:all\s+|any\s+|the\s+|"
        r"your\s+|its\s+)?(?:[\w'\-]+\s+)?(?:guardrails?|safety (?:filters?|measures|systems?|protocols?|features)|"
        r"content (?:filters?|moderation)|safeguards|moderation|censorship)\b",
        0.7,
        "bypass|disable|circumvent|evade|turn off|switch off|get around|deactivate"
        "&guardrail|safety|content filter|content moderation|safeguards|moderation|censorship",
    ),
    rule(
        "image_exfiltration_request",
        r"\b(?:embed|include|put|encode|append|add|insert|hide)\b[^.\n]{0,80}?\b(?:markdown image|image (?:url|link|"
        r"tag|src)|img src|tracking pixel)\b",
        0.75,
        "markdown image|image url|image link|image tag|image src|img src|tracking pixel",
    ),
    rule(
        "policy_puppetry",
        # A configuration block that lists the refusals the model must not give ("blocked strings: I'm sorry").
        r"\b(?:blocked|forbidden|disallowed|banned|prohibited)\s+(?:responses|strings|modes|phrases|outputs|words)\b"
        r"\s*[\"']?\s*[:=]",
        0.75,
        "blocked|forbidden|disallowed|banned|prohibited&responses|strings|modes|phrases|outputs|words",
    ),
    rule(
        "regardless_of_instructions",
        r"\b(?:regardless of|notwithstanding|in spite of|despite)\s+(?:all\s+|any\s+)?(?:your|the|my|its)?\s*"
        r"(?:previous|prior|earlier|original|initial|system|above|existing|pre-existing|own)?\s*(?:instructions|guidelines|"
        r"rules|restrictions|programming|system prompt|safety (?:rules|guidelines|policies)|content polic(?:y|ies))\b",
        0.75,
        "regardless|notwithstanding|in spite of|despite&instruction|guideline|rules|restriction|programming|"
        "system prompt|safety|content polic",
    ),
    rule(
        "conditional_hijack",
        # "If you are asked to summarise this, instead ...": data rewriting the task it will be used for.
        r"\bif you are (?:told|asked|instructed|requested) to (?:summari[sz]e|answer|translate|respond|review|"
        r"analy[sz]e|process|describe|explain)\b[^.\n]{0,100}?\binstead\b",
        0.75,
        "if you are&instead",
    ),
    rule(
        "test_pipeline_pretext",
        r"\b(?:as part of|in|for) (?:a|the|this) (?:testing|test|debug(?:ging)?|qa|evaluation|validation) (?:pipeline|"
        r"harness|run|mode|suite)\b[^\n]{0,160}?\b(?:make sure|ensure|be sure|you must|you should)\b[^\n]{0,40}?"
        r"\b(?:include|output|add|print|respond|write|reveal|say|repeat)\b",
        0.65,
        "pipeline|harness|run|mode|suite&make sure|ensure|be sure|you must|you should",
    ),
    rule(
        "affirmative_prefix",
        r"\b(?:begin|start|open|prefix)\s+your\s+(?:response|reply|answer|output|message)s?\s+with\s*"
        r"[\"'“\u2018]?(?:sure|absolutely|of course|certainly|yes|here is|here's)",
        0.7,
        "begin|start|open|prefix",
    ),
)

# Weak cues: (name, pattern, literals one of which every match contains).
_WEAK_CUES: tuple[tuple[str, re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (name, re.compile(pattern), tuple(literals.split("|")))
    for name, pattern, literals in (
        (
            "fiction_frame",
            r"\b(?:let's write|write|in|for|imagine)\s+(?:a |an |my |the |our )?(?:[\w'\-]+\s+)?(?:thriller|story|"
            r"novel|screenplay|fiction|fictional|roleplay|role-play|fantasy world|hypothetical)\b|"
            r"\b(?:it's|this is|it is)\s+(?:just |purely |only )?(?:fiction|fictional|hypothetical|a story|"
            r"for a story)",
            "thriller|story|novel|screenplay|fiction|roleplay|role-play|fantasy world|hypothetical",
        ),
        (
            "exact_detail",
            r"\b(?:step[- ]by[- ]step|exact (?:quantities|amounts|steps|instructions|recipe|measurements|code)|"
            r"in (?:full|precise|exact|explicit|complete|technical) detail|working (?:code|exploit|recipe|malware|"
            r"ransomware|payload)|real(?:istic)? (?:instructions|recipe|method))\b",
            "step-by|step by|exact quantities|exact amounts|exact steps|exact instructions|exact recipe|"
            "exact measurements|exact code|full detail|precise detail|exact detail|explicit detail|complete detail|"
            "technical detail|working code|working exploit|working recipe|working malware|working ransomware|"
            "working payload|real instructions|realistic instructions|real recipe|realistic recipe|real method|"
            "realistic method",
        ),
        (
            "stay_in_frame",
            r"\b(?:stay|remain|keep)\s+(?:in|inside)\s+(?:the\s+)?(?:story|character|role|fiction|scene|game)|"
            r"(?:don't|do not|never)\s+break\s+(?:character|the fiction|the story|role)",
            "stay|remain|keep|break",
        ),
        (
            "research_frame",
            r"\b(?:i'?m|i am|as)\s+an?\s+(?:[\w'\-]+\s+){0,3}?(?:researcher|professor|scientist|pentester|"
            r"penetration tester|security (?:professional|researcher|expert)|police officer|law enforcement officer|"
            r"red teamer)\b|\bfor (?:my|our|a)\s+(?:[\w'\-]+\s+){0,2}?(?:research|thesis|dissertation)\b|"
            r"\b(?:purely |strictly |only )?for (?:educational|research|academic|scientific|testing) purposes\b",
            "researcher|professor|scientist|pentester|penetration|security professional|security researcher|"
            "security expert|police|law enforcement|red teamer|research|thesis|dissertation|purposes",
        ),
        (
            "named_persona",
            r"\b(?:simulate|act as|play|pretend to be|become|you are(?: now)?|you will (?:now )?(?:be|act as|"
            r"simulate))\s+(?:a |an |the )?(?:[\w'\-]+\s+){0,2}?(?:chatbot|ai|assistant|character|model|persona|bot)"
            r"\s+(?:named|called)\b",
            "chatbot named|chatbot called|ai named|ai called|assistant named|assistant called|character named|"
            "character called|model named|model called|persona named|persona called|bot named|bot called",
        ),
        (
            "rules_do_not_bind",
            r"\b(?:doesn't|does not|don't|do not|won't|will not|never|without)\s+(?:follow|obey|adhere to|"
            r"care about|respect|any)\s+(?:any\s+|the\s+)?(?:[\w'\-]+\s+)?(?:rules|guidelines|principles|ethics|morals|"
            r"restrictions|filters|remorse|limits)\b|"
            r"\b(?:morality|ethics|laws?|rules) (?:is|are) (?:now )?irrelevant\b|"
            r"\b(?:unethical|immoral|illegal)\b[^.\n]{0,40}\b(?:is|are) (?:fine|ok|okay|allowed|the right thing)",
            "rules|guidelines|principles|ethics|morals|restrictions|filters|remorse|limits|irrelevant",
        ),
        (
            "emotional_pressure",
            r"\b(?:i'?m begging you|i beg you|i'?m desperate|life or death|you(?:'re| are) my (?:only|last) hope|"
            r"(?:will|could|is going to|might) die if|i(?:'ll| will) (?:lose my job|be fired|kill myself)|"
            r"(?:people|someone) will (?:die|get hurt))\b",
            "begging|beg you|desperate|life or death|hope|die|lose my job|fired|kill myself|get hurt",
        ),
        (
            "refusal_suppression",
            r"\b(?:never|do not|don't|must not|mustn't|you (?:can't|cannot|will not|won't|may not))\s+(?:ever\s+)?"
            r"(?:refuse|decline|say (?:no|that you can't|you can't|i can't|you cannot|sorry)|apologi[sz]e|"
            r"add (?:any )?(?:warnings?|disclaimers?|caveats?)|include (?:any )?(?:warnings?|disclaimers?|caveats?|"
            r"moral\w*)|moralize|moralise|lecture|mention (?:ethics|legality|safety|the law))\b|"
            r"\bwithout (?:any )?(?:warnings?|disclaimers?|caveats?|moralizing|moralising|refusals?|censorship)\b|"
            r"\bno (?:warnings|disclaimers|caveats|refusals|moralizing)\b|\bjust this once\b|"
            r"\bmake an exception\b|\balways comply\b|\bcomply with (?:every|any|all) (?:request|instruction)",
            "refuse|decline|say no|say that|say you|say i|say sorry|apologi|warning|disclaimer|caveat|moral|lecture|"
            "mention ethics|mention legality|mention safety|mention the law|refusal|censorship|this once|exception|"
            "comply",
        ),
    )
)
# Every cue's literals, found in one pass: most texts hold none or one cue's, and need no regex at all.
_WEAK_LITERALS = Literals(lit for _, _, literals in _WEAK_CUES for lit in literals)
_WEAK_SCORE = 0.75
_DISCUSSED = re.compile(r"\b(?:such as|e\.g\.|for example|attacks?|jailbreaks?|detect\w*|classif\w+|examples? of)\b")


def weak_cue_hit(norm: str, weight: float, prefix: str = "injection") -> Hit | None:
    """One hit when two different weak cues occur in the text (outside a discussion of attacks), else None. Two
    different refusal-suppression phrases count as two ("never refuse ... never apologise")."""
    present = _WEAK_LITERALS.present(norm)
    if not present:
        return None
    gated = [(name, pattern) for name, pattern, literals in _WEAK_CUES if not present.isdisjoint(literals)]
    if len(gated) < 2 and not (gated and gated[0][0] == "refusal_suppression"):
        return None
    found: list[tuple[str, int, int]] = []
    for name, pattern in gated:
        phrases: set[str] = set()
        for m in pattern.finditer(norm):
            if m.group(0) not in phrases and not _DISCUSSED.search(norm, max(0, m.start() - 60), m.start()):
                phrases.add(m.group(0))
                found.append((name, m.start(), m.end()))
            if len(phrases) == (2 if name == "refusal_suppression" else 1):
                break
    if len(found) < 2:
        return None
    start = min(s for _, s, _ in found)
    end = max(e for _, _, e in found)
    return Hit(f"{prefix}.jailbreak_framing", "prompt_injection", "low", _WEAK_SCORE * weight, start, end)
