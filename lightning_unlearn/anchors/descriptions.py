"""Per-class attribute descriptions: the text behind the semantic anchors.

Stake the Points (arXiv 2603.12915) has GPT-4o write attribute descriptions per class. No language
model service is reachable here, so these were written by hand for this project: several short
sentences per class naming visual attributes (shape, parts, texture, typical context) that tell
the class apart from its neighbours. Keys are class indices in the datasets' label order.
"""

from __future__ import annotations

#: Fashion-MNIST, label order of the original dataset (0 = T-shirt/top ... 9 = Ankle boot).
FASHION_MNIST: dict[int, list[str]] = {
    0: [
        "a T-shirt or top: a short-sleeved upper-body garment with a round neckline",
        "a T-shirt lying flat, boxy torso with two short sleeves sticking out",
        "a simple knitted top without buttons or collar, worn on the upper body",
    ],
    1: [
        "a pair of trousers: two long straight legs joined at the waistband",
        "trousers photographed from the front, a tall narrow shape split into two legs",
        "long pants covering the legs from the waist to the ankles",
    ],
    2: [
        "a pullover: a long-sleeved knitted sweater pulled on over the head",
        "a thick jumper with long sleeves spread out to the sides and ribbed cuffs",
        "a warm woollen sweater without buttons, wider than a T-shirt",
    ],
    3: [
        "a dress: a one-piece garment covering the body and hanging down over the legs",
        "a long dress that widens from the waist towards the hem",
        "a sleeveless or short-sleeved dress, narrow at the top and flared at the bottom",
    ],
    4: [
        "a coat: a long-sleeved outer garment that opens at the front with buttons or a zipper",
        "a heavy jacket or coat with a collar, long sleeves and a front opening",
        "outerwear worn over other clothes, longer and thicker than a shirt",
    ],
    5: [
        "a sandal: an open shoe with straps and a flat sole, toes and heel visible",
        "a summer sandal made of thin straps over a sole, mostly empty space",
        "light open footwear with a strappy upper and often a low heel",
    ],
    6: [
        "a shirt: a long- or short-sleeved garment with a collar and buttons down the front",
        "a button-up shirt with a pointed collar and cuffs",
        "a blouse or shirt with a front placket, similar in outline to a T-shirt or pullover",
    ],
    7: [
        "a sneaker: a low sports shoe with laces and a rubber sole, seen from the side",
        "a trainer or running shoe, a closed low shoe with a thick sole",
        "a casual athletic shoe, long and low, with a rounded toe",
    ],
    8: [
        "a bag: a handbag, purse or tote with a handle or strap",
        "a rectangular bag with a carrying handle on top",
        "an accessory for carrying things: a satchel, backpack or purse",
    ],
    9: [
        "an ankle boot: a closed shoe whose upper rises above the ankle, often with a heel",
        "a short boot with a high shaft and a thick sole, seen from the side",
        "footwear covering the foot and ankle, taller than a sneaker",
    ],
}

#: scikit-learn's digits (and MNIST): the handwritten digits 0-9.
DIGITS: dict[int, list[str]] = {
    0: ["the handwritten digit zero: a single closed oval loop", "a round 0 with an empty centre"],
    1: ["the handwritten digit one: a single vertical stroke", "a thin upright 1, sometimes with a small flag at the top"],
    2: ["the handwritten digit two: a curve at the top and a flat stroke along the bottom", "a 2 with a hook on top and a horizontal base"],
    3: ["the handwritten digit three: two bumps open to the left, stacked vertically", "a 3 made of two curves joined in the middle"],
    4: ["the handwritten digit four: a vertical stroke crossed by a horizontal bar with an angled arm", "a 4 with a triangle or open corner at the top left"],
    5: ["the handwritten digit five: a flat top bar, a short vertical stroke and a round belly at the bottom", "a 5 with a hat and a curved lower loop open to the left"],
    6: ["the handwritten digit six: a curved stroke descending into a closed loop at the bottom", "a 6 with a tail at the top and a round bottom loop"],
    7: ["the handwritten digit seven: a horizontal top bar and a long diagonal stroke down", "a 7, a sharp angle at the top right, sometimes crossed"],
    8: ["the handwritten digit eight: two closed loops stacked on top of each other", "an 8 like a snowman, a small loop above a larger one"],
    9: ["the handwritten digit nine: a closed loop at the top with a vertical tail down", "a 9 with a round head and a straight stem"],
}

#: Built-in description sets by name.
DESCRIPTION_SETS: dict[str, dict[int, list[str]]] = {"fashion_mnist": FASHION_MNIST, "digits": DIGITS}
