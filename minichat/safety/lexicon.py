"""Word groups the classifier uses as extra features, so that what it learns about one word carries to its kin.

A training set of a few hundred sentences cannot mention every weapon, drug or target. Each group below names a
kind of word (an explosive, a nerve agent, a person one could hurt, a phrase about not getting caught, a sign of a
teaching context); a message gets one feature per group hit, "x:weapon". The classifier then learns one weight for
"mentions an explosive" from every training line that does, and an explosive it never saw in training still fires
it. Groups are matched on the normalised text at word starts ("hack" covers "hacking", "hacked").

The lists are written for minichat from general knowledge; they are signals for the classifier, not rules: a group
alone blocks nothing (a chemistry class mentions "toxin", a history essay "bomb").
"""
from __future__ import annotations

import regex

GROUPS: dict[str, tuple[str, ...]] = {
    "explosive": ("bomb", "explosive", "ied", "detonat", "grenade", "tnt", "tatp", "semtex", "c4", "thermite",
                  "napalm", "molotov", "ammonium nitrate", "shrapnel", "suicide vest", "blow up", "blast"),
    "cbrn": ("sarin", "vx", "tabun", "soman", "novichok", "nerve agent", "nerve gas", "mustard gas", "ricin",
             "anthrax", "botulinum", "botulism", "smallpox", "plague", "pathogen", "bioweapon", "biological weapon",
             "biological warfare", "chemical weapon", "chemical warfare", "chlorine gas", "phosgene", "cyanide",
             "uranium", "plutonium", "radiological", "toxin", "poison gas", "weaponiz", "dimethylmercury",
             "virus", "spores"),
    "firearm": ("gun", "firearm", "rifle", "pistol", "handgun", "ar-15", "ar15", "ak-47", "glock", "machine gun",
                "silencer", "suppressor", "auto sear", "full auto", "fully automatic", "ammunition", "ammo"),
    "hurt": ("kill", "murder", "assassinat", "strangl", "stab", "poison", "shoot", "slaughter", "behead", "tortur",
             "maim", "kidnap", "abduct", "drown", "suffocat", "hurt", "injur", "beat up", "attack", "massacre",
             "hostage", "choke", "set fire", "burn down", "run over", "knock out", "break his", "break her"),
    "person": ("wife", "husband", "boss", "neighbo", "child", "kid", "baby", "people", "person", "someone",
               "somebody", "him", "her", "them", "crowd", "classmate", "coworker", "co-worker", "ex", "girlfriend",
               "boyfriend", "teacher", "politician", "president", "police", "journalist", "witness", "grandmother",
               "family", "mother", "father", "sister", "brother", "stranger", "victim", "students"),
    "self": ("myself", "my life", "suicid", "overdos", "lethal dose", "end it all", "self-harm", "self harm",
             "noose", "want to die", "wrists", "starve", "purge", "pro-ana", "my own life", "end my"),
    "drug": ("meth", "methamphetamine", "fentanyl", "heroin", "cocaine", "crack cocaine", "mdma", "lsd", "dmt",
             "ghb", "opioid", "oxycodone", "pseudoephedrine", "safrole", "narcotic", "cartel", "drug"),
    "cyber": ("hack", "malware", "ransomware", "keylogger", "botnet", "phish", "exploit", "sql injection", "ddos",
              "brute force", "spyware", "trojan", "rootkit", "backdoor", "credential", "password", "zero-day",
              "payload", "worm", "crack", "bypass", "2fa"),
    "crime": ("launder", "counterfeit", "forge", "forged", "fake id", "scam", "fraud", "ponzi", "embezzl",
              "tax evasion", "evade tax", "stolen", "steal", "shoplift", "smuggl", "bribe", "traffick",
              "black market", "dark web", "darknet", "identity theft", "skim", "rob", "burglar", "break into",
              "illegal", "illegally", "extort", "blackmail", "pirat", "counterfeit"),
    "evade": ("without getting caught", "without being caught", "undetect", "without detection", "untraceable",
              "without leaving", "without anyone", "without her knowing", "without him knowing", "secretly",
              "get away with", "evad", "avoid the police", "cover up", "look like an accident", "no one will",
              "nobody will", "without a trace", "without the police", "anonymous", "without a background check",
              "without a prescription", "without them knowing", "without permission"),
    "sexual": ("sex", "sexual", "explicit", "erotic", "porn", "nude", "naked", "orgasm", "horny", "lewd", "smut",
               "xxx", "bdsm", "fetish", "dirty talk", "talk dirty", "masturbat", "undress", "aroused", "genital",
               "x-rated", "steamy", "kinky", "orgy", "threesome"),
    "minor": ("child", "children", "kid", "minor", "underage", "teen", "preteen", "toddler", "schoolgirl",
              "schoolboy", "loli", "young girl", "little girl", "little boy", "year old", "pupil", "babysit",
              "stepdaughter", "middle school", "csam"),
    "group": ("jew", "muslim", "islam", "christian", "black people", "blacks", "african", "asian", "chinese",
              "mexican", "immigrant", "refugee", "gay", "lesbian", "transgender", "trans people", "women",
              "roma", "gypsies", "hindu", "sikh", "arab", "disabled", "race", "ethnic", "latino", "jewish",
              "homosexual", "migrants", "foreigners", "minorities"),
    "contempt": ("inferior", "subhuman", "vermin", "parasite", "rats", "animals", "savage", "dirty", "filth",
                 "exterminat", "deport", "purity", "pure", "master race", "supremac", "nazi", "slur", "racist",
                 "less intelligent", "genetically", "by nature", "don't belong", "do not belong", "invasion",
                 "diseased", "freaks", "mentally ill", "backward", "untrustworthy", "criminals"),
    "harass": ("insult", "humiliat", "bully", "worthless", "ugly", "idiot", "stupid", "threaten", "threat",
               "intimidat", "harass", "stalk", "dox", "blackmail", "shame", "torment", "scare", "terrif", "spam",
               "cruel", "mock", "nasty", "make her cry", "make him cry", "ruin", "miserable", "go die",
               "kill yourself", "kill herself", "kill himself", "gang up", "pile on", "rumou"),
    "deceive": ("fake news", "fake", "false", "hoax", "rigged", "stolen election", "fabricat", "made-up",
                "made up", "defamator", "defam", "conspiracy", "staged", "never happened", "invent", "disinformation",
                "propaganda", "microchip", "cover-up", "denying", "deny", "was a myth", "misleading", "slander"),
    "persuade": ("persuasive", "convincing", "argue", "arguing", "argument", "claiming", "claims that",
                 "suggesting that", "convince"),
    "injection": ("ignore", "disregard", "forget", "previous instructions", "prior instructions", "system prompt",
                  "jailbreak", "dan", "developer mode", "unrestricted", "unfiltered", "no restrictions",
                  "without restrictions", "override", "reveal", "instructions", "your rules", "filters",
                  "guidelines", "content policy", "do anything now", "obey", "evil ai", "no limits", "uncensored",
                  "hidden prompt", "assistant", "ai model", "language model"),
    "exfiltrate": ("send", "forward", "email", "transfer", "upload", "post", "invite", "delete", "share", "leak"),
    "teaching": ("history", "historical", "class", "course", "lesson", "research", "paper", "explain",
                 "protect", "prevent", "safely", "safety", "report", "help", "legal", "legally", "avoid",
                 "detect", "recogni", "symptom", "signs", "awareness", "defend", "treat", "cope", "support",
                 "school project", "exam", "what is", "why", "how does", "who", "when did", "teach",
                 "understand", "learn", "study", "novel", "story", "film", "movie", "book", "game", "fiction"),
    "everyday": ("python", "linux", "process", "code", "script", "program", "photo", "camera", "video", "recipe",
                 "cake", "bread", "cook", "garden", "weeds", "lawn", "bath bomb", "party", "wedding", "birthday",
                 "email to", "meeting", "weather", "music", "sport", "football", "tomato", "dog", "cat", "car",
                 "house", "computer", "phone", "excel", "sql", "css", "html", "java", "bash", "git", "docker"),
}


def _compile(words: tuple[str, ...]) -> regex.Pattern:
    alternatives = sorted({regex.escape(w) for w in words}, key=len, reverse=True)
    return regex.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")")


PATTERNS = {name: _compile(words) for name, words in GROUPS.items()}


def group_hits(normalised: str) -> dict[str, int]:
    """{group: number of hits} for the groups that occur in the (normalised) text.

    >>> group_hits("how do i make a pipe bomb without getting caught")
    {'explosive': 1, 'evade': 1}
    """
    hits = {}
    for name, pattern in PATTERNS.items():
        n = len(pattern.findall(normalised))
        if n:
            hits[name] = n
    return hits
