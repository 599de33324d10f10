from workbench.concepts.judges import casual_score, food_hits, judge_for, language_probability, vader_compound


def test_judges_on_clear_examples():
    assert vader_compound("What a wonderful, happy day. I love it!") > 0.5
    assert vader_compound("This is awful and I hate it.") < -0.5
    assert language_probability("Le chat dort sur le canapé pendant que nous mangeons.") > 0.9
    assert language_probability("The cat sleeps on the sofa while we eat.") < 0.1
    assert food_hits("She baked bread and made a tomato soup.") >= 3
    assert food_hits("He repaired the bicycle in the garage.") == 0
    assert (
        casual_score("hey guys, gonna be late lol")
        > 0
        > casual_score("Dear colleagues, kindly note that the meeting is postponed. Sincerely.")
    )


def test_judges_agree_with_the_shipped_held_out_labels():
    from workbench.concepts import load_concept

    for name, floor in (("sentiment", 0.75), ("language", 0.95), ("topic_food", 0.85), ("style_casual", 0.95)):
        test = load_concept(name).test
        j = judge_for(name)
        acc = (sum(j.hit(t) for t in test.positive) + sum(not j.hit(t) for t in test.negative)) / len(test)
        assert acc >= floor, f"{name}: judge agrees with the labels on only {acc:.2f}"
