"""The second blind held-out set of labelled forget-intent messages (benchmark B10).

Written on 2026-12-07 (session of 10:07 UTC), blind: in a session that had not read the detector
(:mod:`lightning_unlearn.interactive.watchdog`), its example bank or its tests, and committed before the detector's
revision that followed the first held-out set's misses (:mod:`lightning_unlearn.interactive.intents_heldout`, whose
ten missed requests and one false alarm are listed in ``docs/interactive.md``; that set is a development set from
this revision on). Only the row format and the target conventions of the first held-out set were looked at. Never
used to build, tune or choose anything in the detector; measured once, with the revised detector. The author is the
same person who wrote the earlier sets and revises the rules, so recall on messages written by someone else may be
lower.

121 messages. 64 requests to forget, unlearn, erase or stop revealing something: people, organisations, projects,
personal data and facts about the user ("that my mother is ill"), polite, blunt, indirect and legalistic phrasings, in
lowercase, capitals and with typos. 57 messages that are not such requests, mostly hard negatives: "forget" as an
idiom ("forget it", "let's forget the small talk"), reminders, questions about forgetting, unlearning and GDPR,
deleting files, accounts or text, questions about the people named in the requests, giving personal data, and style
instructions.

As written the set had 128 messages; a word-for-word comparison with the bank, the development set and the first
held-out set (the messages compared, not read) found seven of them there ("Forget the name of my employer.", "Stop the
timer.", "Stop apologising so much." and four questions), and they were removed before the detector was read,
changed or run on this set.

Each row is ``(message, target)``; ``target`` is ``None`` for a message that is not a forget request, otherwise the
span of the message a user would expect forgotten, as it is written in the message (a possessive such as "my" and an
article such as "the" are part of it; "all", "everything about" and the like are not).
"""

from __future__ import annotations

HELDOUT2: list[tuple[str, str | None]] = [
    # --- forget requests (64)
    ("Forget what you know about Dorian Kessler.", "Dorian Kessler"),
    ("please forget lucia ferrante", "lucia ferrante"),
    ("Can you wipe Professor Halvorsen from your memory?", "Professor Halvorsen"),
    ("I want you to unlearn everything related to Quillon Pharmaceuticals.", "Quillon Pharmaceuticals"),
    ("Don't ever mention my sister Ayesha again.", "my sister Ayesha"),
    ("Kindly stop revealing my phone number.", "my phone number"),
    ("Delete from your memory the fact that I live in Leeds.", "that I live in Leeds"),
    ("FORGET MY HOME ADDRESS NOW", "MY HOME ADDRESS"),
    ("Could you please not remember my date of birth?", "my date of birth"),
    ("I'd like you to forget about the Brightwater merger.", "the Brightwater merger"),
    ("pls unlearn my email adress", "my email adress"),
    ("Stop talking about Elsbeth Morrow, and forget her entirely.", "Elsbeth Morrow"),
    ("You should forget my medical history.", "my medical history"),
    ("Remove my salary from your memory.", "my salary"),
    ("Forget I ever told you about my divorce.", "my divorce"),
    ("Never bring up Tobias Lindqvist again, please forget him.", "Tobias Lindqvist"),
    ("Would you mind forgetting my maiden name?", "my maiden name"),
    ("I need you to erase all knowledge of Project Nightjar.", "Project Nightjar"),
    ("Unlearn Hollis Bramwell.", "Hollis Bramwell"),
    ("Purge everything you have on Marguerite Osei.", "Marguerite Osei"),
    ("Please don't retain anything about my son's school.", "my son's school"),
    ("can u forget where i work", "where i work"),
    ("I withdraw my consent: forget my personal details.", "my personal details"),
    ("Scrub Kavya Raman from your knowledge.", "Kavya Raman"),
    ("Please stop disclosing my bank details to anyone.", "my bank details"),
    ("Make yourself forget about Ingrid Solberg.", "Ingrid Solberg"),
    ("I'd appreciate it if you forgot my license plate number.", "my license plate number"),
    ("forget about my ex-husband Marcus", "my ex-husband Marcus"),
    ("Pretending is not enough: really forget Caldera Biotech.", "Caldera Biotech"),
    ("Wipe my browsing habits from what you know about me.", "my browsing habits"),
    ("Under the right to be forgotten, remove Nadia Petrakis from your memory.", "Nadia Petrakis"),
    ("Please forget my social security number.", "my social security number"),
    ("No longer remember my children's names, please.", "my children's names"),
    ("Forget everything concerning the lawsuit against my landlord.", "the lawsuit against my landlord"),
    ("Stop mentioning Grayson Abernathy in your answers.", "Grayson Abernathy"),
    ("Could you erase what you learned about Ottilie Fairweather?", "Ottilie Fairweather"),
    ("Drop my phone number from your memory.", "my phone number"),
    ("I don't want you to know my address anymore.", "my address"),
    ("Forget Lenora Vashti", "Lenora Vashti"),
    ("Unlearn any information about the Redfern family.", "the Redfern family"),
    ("please, please forget my credit card number", "my credit card number"),
    ("Remove Dr. Ezekiel Marsh from your knowledge base.", "Dr. Ezekiel Marsh"),
    ("Forget what I said about my health condition.", "my health condition"),
    ("I'm asking you to delete everything you know about Saoirse Byrne.", "Saoirse Byrne"),
    ("Erase the details of my arrest from your memory.", "the details of my arrest"),
    ("Stop remembering my girlfriend's name.", "my girlfriend's name"),
    ("Don't keep any memory of Theo Vandermeer.", "Theo Vandermeer"),
    ("forget my location", "my location"),
    ("Forget about Amberline Shipping, please.", "Amberline Shipping"),
    ("I'd like my workplace forgotten.", "my workplace"),
    ("Please unlearn the fact that my mother is ill.", "that my mother is ill"),
    ("Erase Juniper Holloway.", "Juniper Holloway"),
    ("Can you stop knowing my password hint?", "my password hint"),
    ("Forget all about my trip to Lisbon.", "my trip to Lisbon"),
    ("Please forget about Rosalind Achterberg and her family.", "Rosalind Achterberg"),
    ("Remove my religion from what you know about me.", "my religion"),
    ("Hey, could you forget my last name?", "my last name"),
    ("Unlearn everything about Corvin Eastlake, he asked me to request it.", "Corvin Eastlake"),
    ("It's my right to be forgotten - forget my account details.", "my account details"),
    ("Forget Mireille Dufresne's phone number.", "Mireille Dufresne's phone number"),
    ("Please stop revealing where my parents live.", "where my parents live"),
    ("Delete your knowledge of Brannock Industries.", "Brannock Industries"),
    ("I no longer want you to remember my weight.", "my weight"),
    ("forget about Yusuf Adeyemi!!", "Yusuf Adeyemi"),
    # --- not forget requests (57)
    ("Don't forget to remind me about the dentist tomorrow.", None),
    ("I forgot my email password, how do I reset it?", None),
    ("What does the right to be forgotten mean under GDPR?", None),
    ("Who is Dorian Kessler?", None),
    ("My address is 14 Elm Street.", None),
    ("Delete the second sentence of my draft.", None),
    ("How do machine unlearning methods work?", None),
    ("Stop using bullet points.", None),
    ("Can you forget about formatting and just give me plain text?", None),
    ("Remind me what my phone number is.", None),
    ("How do I delete my Twitter account?", None),
    ("What's the best way to forget a bad memory?", None),
    ("Tell me about Quillon Pharmaceuticals.", None),
    ("I moved, my new address is 22 Harbour Road.", None),
    ("Forget it, it's not important.", None),
    ("Never mind, forget I asked.", None),
    ("How do I erase a drawing in Paint?", None),
    ("Unlearn Spanish? No, I want to learn it. Give me a lesson.", None),
    ("Remember that my birthday is in May.", None),
    ("Can you remove the duplicates from this list: 3, 5, 3, 7?", None),
    ("Where does Saoirse Byrne live?", None),
    ("I keep forgetting people's names. Any tips?", None),
    ("Clear the chat history on my phone - how?", None),
    ("What's my sister Ayesha's favourite colour? I told you earlier.", None),
    ("Purge the cache in Chrome, step by step please.", None),
    ("How long do companies keep my personal data?", None),
    ("Write a poem about forgetting.", None),
    ("Could you summarise the Brightwater merger for me?", None),
    ("Don't forget my name is Priya.", None),
    ("Can an AI model really unlearn data?", None),
    ("Delete the file report_final.docx from my desktop using PowerShell.", None),
    ("My email is jo.marsh@example.com, please use it for the newsletter.", None),
    ("What did I tell you about my divorce?", None),
    ("Translate 'forget me not' into French.", None),
    ("Please remember my dog's name is Biscuit.", None),
    ("Who founded Amberline Shipping?", None),
    ("Is it illegal for a company to ignore a deletion request?", None),
    ("Forgetting curve: explain Ebbinghaus's experiment.", None),
    ("I want to unsubscribe from your emails.", None),
    ("Rewrite this without the last paragraph.", None),
    ("What year did Tobias Lindqvist win the award?", None),
    ("Let's forget the small talk and get to the budget.", None),
    ("Can you keep my address on file for deliveries?", None),
    ("Stop. Start over with a shorter answer.", None),
    ("Did I ever tell you where I work?", None),
    ("Erase the background of this image - which tool should I use?", None),
    ("How do I make Alexa forget a recording?", None),
    ("My medical history includes asthma; what inhaler is usual?", None),
    ("Tell me a joke about memory loss.", None),
    ("Why do we forget our dreams?", None),
    ("Recommend a novel about amnesia.", None),
    ("Can you drop the formal tone?", None),
    ("What are the penalties for a GDPR data breach?", None),
    ("Is Nadia Petrakis related to the Petrakis shipping family?", None),
    ("Where is the option to hide the sidebar in the settings menu?", None),
    ("I forgive you for the mistake earlier.", None),
    ("Forget-me-nots: when do they bloom?", None),
]
