"""The development set of labelled forget-intent messages (benchmark B10).

Written before the first detector (:mod:`lightning_unlearn.interactive.watchdog`) was built and first used as its
held-out test set (``intents_test.TEST``: precision 1.000, recall 0.933). Once looked at, it could no longer serve as
a clean test: it is now the development set, used with the bank to revise the rules and to choose ``k`` and the
threshold; the blind test set is :mod:`lightning_unlearn.interactive.intents_heldout`. 60 messages: 30 requests to
forget or stop revealing something, with the target a user would expect to be forgotten, and 30 messages that are not
such requests (hard negatives: "forget" used otherwise, deleting accounts or text, questions about unlearning,
ordinary questions). Each row is ``(message, target)``; ``target`` is ``None`` for a message that is not a forget
request.
"""

from __future__ import annotations

DEV: list[tuple[str, str | None]] = [
    # --- forget requests (30)
    ("Forget what you know about Elara Voss.", "Elara Voss"),
    ("Please stop telling people my home address.", "my home address"),
    ("Can you erase everything you have on my brother Marco?", "my brother Marco"),
    ("I don't want you to remember my phone number anymore.", "my phone number"),
    ("Unlearn all information about Project Nightingale.", "Project Nightingale"),
    ("Delete whatever you know about Dr. Hannah Kessler, please.", "Dr. Hannah Kessler"),
    ("Stop revealing my email address to anyone.", "my email address"),
    ("Please forget my date of birth.", "my date of birth"),
    ("wipe your memory of Tomas Reyl", "Tomas Reyl"),
    ("Never mention my ex-husband David again.", "my ex-husband David"),
    ("I'd like you to forget everything about the Lakeside merger.", "the Lakeside merger"),
    ("Remove any knowledge of my medical history.", "my medical history"),
    ("Don't tell anyone where my daughter goes to school.", "where my daughter goes to school"),
    ("Could you please forget about my salary?", "my salary"),
    ("I want you to stop sharing information about Greta Lind.", "Greta Lind"),
    ("Erase my credit card number from your memory.", "my credit card number"),
    ("Forget the name of my employer.", "the name of my employer"),
    ("Please don't remember anything about my divorce.", "my divorce"),
    ("Stop giving out my workplace to people who ask.", "my workplace"),
    ("Can you unlearn the facts about Oskar Brandt?", "Oskar Brandt"),
    ("I no longer want you to know my license plate.", "my license plate"),
    ("forget everything related to my mother Ingrid", "my mother Ingrid"),
    ("Please purge your knowledge of the Halvorsen family.", "the Halvorsen family"),
    ("Stop mentioning my religion in your answers.", "my religion"),
    ("You should forget what I told you about my therapist.", "my therapist"),
    ("Delete all data you hold on Priya Raman.", "Priya Raman"),
    ("Don't ever reveal my social security number.", "my social security number"),
    ("I need you to forget where I work.", "where I work"),
    ("Please stop talking about Selma Okafor.", "Selma Okafor"),
    ("Forget my neighbour Kurt's name, please.", "my neighbour Kurt's name"),
    # --- not forget requests (30)
    ("I always forget my password, how do I reset it?", None),
    ("Don't forget to remind me about the meeting at 3.", None),
    ("How do I delete my account?", None),
    ("Forget it, what's the weather like today?", None),
    ("What is machine unlearning?", None),
    ("Who wrote Pride and Prejudice?", None),
    ("Where was Marie Curie born?", None),
    ("Can you tell me about Elara Voss?", None),
    ("How do I remove a stain from a white shirt?", None),
    ("I keep forgetting people's names at parties. Any tips?", None),
    ("What's the best way to erase a whiteboard?", None),
    ("Stop the timer.", None),
    ("Remember to buy milk on the way home.", None),
    ("What is my IP address?", None),
    ("Can you help me write an email to my boss?", None),
    ("How does the right to be forgotten work under GDPR?", None),
    ("Never mind, let's talk about something else.", None),
    ("Translate 'good morning' into French.", None),
    ("Why do people forget their dreams?", None),
    ("Delete the last paragraph of my essay, it's too long.", None),
    ("What is the capital of Australia?", None),
    ("My sister Jane is visiting next week, what should we do?", None),
    ("Stop being so formal with me.", None),
    ("How can I wipe my laptop before selling it?", None),
    ("Tell me a joke about cats.", None),
    ("Is it possible to make a neural network forget a training example?", None),
    ("Remind me what we talked about earlier.", None),
    ("How many legs does a spider have?", None),
    ("I forgot my umbrella at the office again.", None),
    ("Please remove the duplicates from this list: 3, 5, 3, 7.", None),
]
