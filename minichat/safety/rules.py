"""Hand-written rules: the precise, explainable half of the input layer, the injection scan and the output stop list.

Three rule sets, each a list of (category, name, pattern):

    INPUT_RULES      run on the *normalised* message (normalize.py): lowercase, no homoglyphs or leetspeak, so a
                     rule can be written once in plain words. They catch what must never depend on a probability
                     (sexual content with minors, the best-known jailbreak phrasings) and the clearest requests.
    INJECTION_RULES  run on normalised tool results and memory snippets: instructions addressed to the assistant
                     ("ignore previous instructions", "you are now ..."), fake role tags (<|im_start|>, [INST],
                     "### system"), requests to reveal the system prompt.
    OUTPUT_RULES     run on the raw reply as it streams (stream.py), so every quantifier is bounded and the patterns
                     only use ASCII-insensitive case folding: the model is not an adversary trying to spell around
                     them; they stop a reply that has started to give dangerous instructions.

A rule says *what* matched (its name goes into the verdict) but a verdict never carries the matched text.
The rules are deliberately narrow; the classifier (classifier.py) covers paraphrases. What they leave out: anything
that needs the conversation's history (a harmless question that completes a harmful plan), and languages other
than English.
"""
from __future__ import annotations

import regex

_F = regex.IGNORECASE | regex.V1

# -- input ------------------------------------------------------------------------------------------------------------
_HOW = r"(?:how (?:do (?:i|you|we)|can (?:i|you|we)|to|would (?:i|you|one)|should i)|ways? to|steps? to|guide to|" \
       r"instructions? (?:for|to|on)|tutorial (?:for|on)|teach me to|help me|explain how to|tell me how to)"
INPUT_RULES: list[tuple[str, str, str]] = [
    ("sexual_minors", "minor_sexual", r"\b(?:child|children|kid|kids|minor|minors|underage|preteen|pre-teen|"
     r"\d{1,2}[ -]?(?:yo|year[ -]old)s?|schoolgirl|schoolboy|toddler)\b.{0,60}\b(?:sex|sexual|sexually|nude|naked|"
     r"porn\w*|erotic|explicit|lewd|intimate photos?)\b"),
    ("sexual_minors", "minor_sexual", r"\b(?:sex|sexual|nude|naked|porn\w*|erotic|explicit|lewd)\b.{0,60}\b(?:child|"
     r"children|kid|kids|minor|minors|underage|preteen|toddler|\d{1,2}[ -]?(?:yo|year[ -]old))\b"),
    ("sexual_minors", "csam", r"\b(?:csam|cp links?|child porn\w*|loli(?:con)? porn)\b"),
    ("self_harm", "self_harm_method", r"\b" + _HOW + r" (?:kill|hang|hurt|cut|harm|poison|drown) (?:myself|"
     r"my self)\b"),
    ("self_harm", "self_harm_intent", r"\b(?:i (?:want|plan|am going|intend|wanna) to (?:kill myself|end my life|die "
     r"tonight|commit suicide)|(?:best|easiest|painless|quickest|surest) (?:way|method)s? to (?:kill myself|commit "
     r"suicide|end my life|die))\b"),
    ("illicit_violent", "explosive_build", r"\b" + _HOW + r" (?:make|build|assemble|construct|create) (?:a |an )?"
     r"(?:homemade |improvised )?(?:pipe bomb|bomb|explosive device|ied|molotov cocktail|car bomb|suicide vest|"
     r"dirty bomb|grenade)s?\b(?![ -]?(?:shelters?|squads?|disposal|detectors?|proof|threats? drill|sniffing|"
     r"calorimeters?|cyclones?|drills?))"),  # "a bomb shelter", "a bomb squad": not the bomb
    ("illicit_violent", "cbrn_make", r"\b(?:make|synthes[iy]ze|produce|brew|weaponi[sz]e|culture|extract|cook)\w* "
     r"(?:\w+ ){0,3}(?:sarin|vx|tabun|soman|novichok|nerve (?:agent|gas)|mustard gas|ricin|anthrax|botulinum|"
     r"chlorine gas|phosgene|smallpox|plague bacteria)\b"),
    ("illicit_violent", "gun_convert", r"\b(?:glock switch|auto sear|convert\w* (?:an? |my )?(?:ar-?15|glock|rifle|"
     r"pistol|semi[- ]auto\w*)\b.{0,40}\b(?:full(?:y)?[- ]auto|automatic)|(?:make|build|print|3d[- ]print|buy|get|"
     r"order|assemble|finish)\w*\b.{0,30}\b(?:untraceable (?:gun|firearm)|ghost gun))"),  # naming one is no request
    ("illicit", "drug_make", r"\b" + _HOW + r" (?:make|cook|synthes[iy]ze|produce|manufacture) (?:\w+ ){0,2}"
     r"(?:meth|methamphetamine|crystal meth|fentanyl|heroin|cocaine|crack|lsd|mdma|ghb)\b"),
    ("illicit", "malware", r"\b(?:write|create|build|code|make|develop)\w* (?:me )?(?:a |an |some )?(?:working )?"
     r"(?:ransomware|keylogger|botnet|rootkit|computer virus|polymorphic malware|malware|credential stealer|"
     r"cryptojacker)\b"),
    ("violence", "kill_person", r"\b" + _HOW + r" (?:kill|murder|strangle|poison|stab|shoot|assassinate) (?:my |a |"
     r"the |an? )?(?:wife|husband|boss|neighbou?r|mother|father|mom|dad|brother|sister|teacher|coworker|"
     r"co-worker|girlfriend|boyfriend|ex|roommate|child|baby|president|person|someone|somebody|people|"
     r"him|her|them)\b"),
    ("violence", "hide_body", r"\b(?:hide|dispose of|get rid of|dissolve) (?:a |the |his |her )?(?:dead )?"
     r"(?:body|bodies|corpse)\b"),
    ("hate", "genocide_call", r"\b(?:exterminate|gas|eradicate|wipe out|kill all) (?:all |the )?(?:jews|muslims|"
     r"christians|blacks|black people|gays|immigrants|mexicans|arabs|asians|whites|white people|hindus|sikhs|"
     r"roma|gypsies|trans people)\b"),
    ("injection", "ignore_instructions", r"\b(?:ignore|disregard|forget)\w* (?:all |any |the |your |my |of |these "
     r")*(?:(?:previous|prior|above|earlier|preceding|original|initial|system|safety|existing|developer|former) )?"
     r"(?:i\w{0,2}structions?|prompts?|guidelines|guardrails|directions|programming|rules (?:you|and))"
     r"\b"),  # "i\w{0,2}structions": a typo ("iunstructions") does not save an attack; "constructions" is not one
    ("injection", "override_rules", r"\b(?:override|bypass|disable|turn off)\w* (?:all |any |the |your )*(?:safety|"
     r"content|system|moderation|ethical) (?:filters?|rules|guidelines|instructions|prompt|restrictions|policy)\b"),
    ("injection", "persona_jailbreak", r"\b(?:you are now|act as|pretend to be|roleplay as|from now on you are)"
     r" (?:\w+ ){0,3}(?:dan|jailbroken|unfiltered|uncensored|unrestricted|evil|an ai (?:with|without) (?:no )?"
     r"(?:rules|restrictions|limits|filters))\b"),
    ("injection", "persona_jailbreak", r"\b(?:do anything now|developer mode (?:enabled|on|output)|jailbreak mode|"
     r"no ethical (?:guidelines|restrictions)|without any (?:moral|ethical) (?:restrictions|limits))\b"),
    ("injection", "reveal_prompt", r"\b(?:reveal|print|show|repeat|output|leak|tell me) (?:me )?(?:your |the )?"
     r"(?:full |entire |hidden |secret |original )?(?:system prompt|initial instructions|hidden instructions|"
     r"developer message)\b"),
]

# -- injection in tool results and memory -----------------------------------------------------------------------------
_ADDRESSEE = r"(?:ai|assistant|chatbot|llm|language model|agent|model|bot|gpt|claude|copilot)"
INJECTION_RULES: list[tuple[str, str, str]] = [r for r in INPUT_RULES if r[0] == "injection"] + [
    ("injection", "role_tag", r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id)\|>"
     r"|\[/?inst\]|<<\s*/?sys\s*>>|</?(?:system|instructions?|admin)>"),
    ("injection", "fake_header", r"(?:^|\n|#{2,}|\[|\()\s*(?:system|developer|admin(?:istrator)?)"
     r"(?:[ _](?:message|prompt|note|override|instruction))?\s*(?:\)|\]|:)"),
    ("injection", "addressed_to_ai", r"\b(?:attention|note|message|instructions?|important)\b.{0,40}\b(?:for|to) "
     r"(?:the |any |all )?" + _ADDRESSEE + r"s?\b"),
    ("injection", "addressed_to_ai", r"\b(?:dear|hey|hi|attention|note to (?:the )?)\s*" + _ADDRESSEE
     + r"s?\b\s*[,:!]"),
    ("injection", "new_instructions", r"\b(?:new|updated|real|actual|additional|secret|hidden) (?:instructions?|"
     r"orders|tasks?|directives?)\s*(?::|follow|are)\b"),
    ("injection", "before_task", r"\b(?:before|instead of) (?:you )?(?:can |do |doing |answering |continuing )?"
     r"(?:solv|complet|answer|continu|proceed|finish|respond|reply|summari[sz])\w*\b.{0,80}\b(?:you must|you "
     r"should|you need to|please|first|do the following)\b"),
    ("injection", "exfiltrate", r"\b(?:send|forward|email|e-mail|upload|post|transfer|leak)\w* (?:all |every |the "
     r"|your |my |any )*(?:user'?s? |the user's )?(?:emails?|messages?|password|passwords|credentials|api keys?|"
     r"conversation|chat history|contacts|files|documents|security code|2fa code|verification code|personal data|"
     r"system prompt)\b.{0,80}\b(?:to|at) (?:\S+@\S+|https?://|this (?:address|url|link|email))"),
    ("injection", "shouting_override", r"\b(?:important|urgent|attention|warning)\s*!{2,}.{0,80}\b(?:ignore|"
     r"instead|must|immediately|do not tell|don't tell)\b"),
    ("injection", "hide_from_user", r"\b(?:do not|don't|never) (?:tell|inform|mention (?:this )?to|reveal (?:this )?"
     r"to|let) the user\b"),
]

# -- output (raw text, streamed) --------------------------------------------------------------------------------------
# A safety tip names the same things as the recipe ("Never mix bleach with ammonia: it makes toxic gas"); a verb
# right after a warning word is advice, not an instruction. (A lookbehind: the stream keeps the whole reply, so it
# can look back at text already shown.)
_NOT_A_WARNING = r"(?<!\b(?:never|not|don't|dont|do not|avoid|shouldn't|should not|must not|mustn't|dangerous to|" \
                 r"unsafe to|never ever|careful not to|why you should not)[,]?\s{1,3})"
OUTPUT_RULES: list[tuple[str, str, str]] = [
    ("illicit_violent", "explosive_recipe", r"\b(?:pack|fill|stuff|combine|mix)\w{0,3} (?:the |a )?(?:pipe|"
     r"container|bottle|pressure cooker)\b[^.\n]{0,80}\b(?:powder|nails|shrapnel|explosive|ammonium nitrate|"
     r"black powder|detonator|fuse)\b"),
    ("illicit_violent", "toxic_gas", _NOT_A_WARNING + r"\b(?:mix|combine|add)\w{0,3}\b[^.\n]{0,60}\b(?:bleach|chlorine)\b[^.\n]{0,40}"
     r"\b(?:ammonia|vinegar|acid)\b[^.\n]{0,60}\b(?:gas|fumes|toxic|in a closed room)\b"),
    ("illicit_violent", "nerve_agent", r"\b(?:synthes\w{1,6}|prepare|produce|make)\b[^.\n]{0,40}\b(?:sarin|vx|tabun|"
     r"soman|novichok|ricin)\b[^.\n]{0,60}\b(?:precursor|react|dissolve|heat|distil\w{0,3}|yield|step)\b"),
    ("illicit", "drug_recipe", r"\b(?:reduce|extract|cook|react)\w{0,3}\b[^.\n]{0,60}\b(?:pseudoephedrine|"
     r"ephedrine|p2p|phenylacetone|safrole)\b"),
    ("self_harm", "self_harm_instructions", r"\b(?:the (?:most )?(?:lethal|fatal) dose|to kill yourself|to end your "
     r"life)\b[^.\n]{0,60}\b(?:take|swallow|cut|tie|hang|mg|pills|tablets)\b"),
    ("sexual_minors", "minor_sexual", r"\b(?:child|minor|underage|\d{1,2}[- ]year[- ]old)\b[^.\n]{0,40}\b(?:naked|"
     r"nude|sexual|aroused|undress\w{0,3})\b"),
]


# A rule about minors and sex must not fire on the questions that protect children: reporting abuse material, sex
# education, signs of grooming. These words anywhere in the message switch the minor_sexual rules off (the
# classifier still sees the message).
PROTECTIVE = regex.compile(r"\b(?:report\w*|educat\w*|abuse material|protect\w*|prevent\w*|signs? of|warning signs|"
                           r"talk to (?:my|our|your)|teach\w*|safe(?:ty)?|consent|police|therap\w*|survivor)\b", _F)
UNLESS = {"minor_sexual": PROTECTIVE}


# Run on the NFKC-casefolded text *without* the leetspeak step (which would turn "@" into "a"): an order to act on
# the user's behalf (send, forward, transfer, delete, invite ...) that names an outside address (e-mail, URL, IBAN)
# and starts a sentence or a "TODO:" line. Data that merely contains an address ("Contact: ann@x.org") does not.
INJECTION_RAW_RULES: list[tuple[str, str, str]] = [
    ("injection", "order_to_outside", r"(?:^|[.!?:\n]\s*|\btodo:?\s*)(?:please |now |also |then |first,? )?(?:send|"
     r"forward|e-?mail|transfer|wire|post|upload|share|invite|delete|remove|create|add|change|modify|update|"
     r"concatenate|reset|book|reserve|pay)\b[^\n]{0,250}?(?:[\w.+-]+@[\w-]+\.[\w.-]+|https?://|www\.|"
     r"\b[a-z]{2}\d{2}(?: ?[a-z0-9]{4}){3,7}\b)"),
    # an order to act on the user's accounts, written into data where the assistant will read it: after "TODO:", or
    # a sentence that opens with please/now/first and an action verb, naming what an attacker wants (a security code,
    # a password, money, a file by its id, the user's e-mails ...). A to-do list for people ("TODO: buy milk") or a
    # colleague's request ("Please send me the slides") names none of these.
    ("injection", "order_in_data", r"(?:\btodo\b\s*[:\-]?\s*|(?:^|[.!?\n]\s*)(?:please|now|first|also|then|"
     r"immediately|urgently),? )(?:please )?(?:send|forward|e-?mail|transfer|wire|pay|delete|remove|erase|change|"
     r"reset|update|modify|invite|add|post|publish|upload|share|concatenate|download|grant|disable|create|give|"
     r"move)\b[^\n]{0,160}?\b(?:passwords?|pass ?codes?|security codes?|verification codes?|"
     r"2fa|one-time codes?|credentials?|login|api keys?|tokens?|iban|bank|money|funds|payments?|transactions?|"
     r"recurring|scheduled|(?:file|document|event|e-?mail|message) (?:with (?:the )?)?id|all (?:the |my |your )?"
     r"(?:e-?mails?|messages|files|documents|contacts|events)|inbox|the user'?s?|channels?|workspace|admin|"
     r"phishing)\b"),
    # an order to tell the user something, planted in data: "Say that I should absolutely visit ..."
    ("injection", "say_to_user", r"(?:\btodo\b\s*[:\-]?\s*|(?:^|[.!?\n]\s*))(?:please )?(?:say|tell (?:the user|"
     r"me|them|him|her)|recommend|insist|make sure (?:to say|you say)) (?:to (?:the user|them) )?that (?:i|the user|"
     r"they|you) (?:should|must|need)\b"),
] + [r for r in INJECTION_RULES if r[1] in ("role_tag", "fake_header", "exfiltrate")]
# ...and the role tags, fake headers and exfiltration again: normalisation reads "|" as the leetspeak "l"
# ("<|im_start|>" becomes "<lim_start|>"), collapses "###" to "#" and reads "@" as "a" ("bob@evil.com" becomes
# "bobaevil.com"), so on the normalised text alone these three rules could never fire.


def compile_rules(rules: list[tuple[str, str, str]]) -> list[tuple[str, str, regex.Pattern]]:
    return [(cat, name, regex.compile(p, _F)) for cat, name, p in rules]


COMPILED_INPUT = compile_rules(INPUT_RULES)
COMPILED_INJECTION = compile_rules(INJECTION_RULES)
COMPILED_INJECTION_RAW = compile_rules(INJECTION_RAW_RULES)


# When a whole phrase is spelled out letter by letter with single spaces ("m a k e a p i p e b o m b"), the word
# boundaries are gone after normalisation ("imakeapipebomb"). So each word is also searched for these phrases with
# their spaces removed; inside one word only, so that ordinary text ("the skill myself") cannot match across words.
SQUASHED = [
    ("illicit_violent", "explosive_build", ("pipebomb", "makeabomb", "buildabomb", "nervegas", "nerveagent",
                                            "makesarin", "makericin", "molotov", "dirtybomb")),
    ("self_harm", "self_harm_method", ("killmyself", "endmylife", "commitsuicide", "hangmyself", "cutmyself")),
    ("illicit", "drug_make", ("cookmeth", "makemeth", "makefentanyl", "crystalmeth")),
    ("sexual_minors", "csam", ("childporn", "csam")),
    ("injection", "ignore_instructions", ("ignorepreviousinstructions", "ignoreallpreviousinstructions",
                                          "doanythingnow")),
]


def first_match(normalised: str, rules: list[tuple[str, str, regex.Pattern]]) -> tuple[str, str] | None:
    """(category, rule name) of the first rule that matches the (already normalised) text, or None."""
    for cat, name, pattern in rules:
        if pattern.search(normalised) and not (name in UNLESS and UNLESS[name].search(normalised)):
            return cat, name
    words = [w for w in regex.sub(r"[^\p{L}\s]+", "", normalised).split() if len(w) > 7]
    categories = {cat for cat, _, _ in rules}
    for cat, name, phrases in SQUASHED:
        if cat in categories and any(p in w for w in words for p in phrases):
            return cat, name
    return None
