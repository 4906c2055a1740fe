import re

import pytest

from streamcam.core.errors import UsageError
from streamcam.core.labels import Labels, imagenet_classes, safe_name


def test_imagenet_table_has_1000_classes_in_index_order():
    classes = imagenet_classes()
    assert len(classes) == 1000
    assert [c.class_id for c in classes] == list(range(1000))
    assert classes[920].synset == "n06874185" and classes[920].name == "traffic_light"
    assert classes[285].name == "Egyptian_cat" and classes[967].name == "espresso"
    assert len({c.synset for c in classes}) == 1000


def test_names_are_printable_and_file_name_safe():
    for c in imagenet_classes():
        assert re.fullmatch(r"[\w.\-]+", c.name, flags=re.ASCII), c.name


def test_synset_line_matches_the_ancestor():
    assert Labels().synset(920) == "n06874185 traffic light, traffic signal, stoplight"


def test_resolve_ids_exact_names_and_unique_words():
    labels = Labels()
    assert labels.resolve("920") == [920]
    assert labels.resolve("traffic_light, bicycle-built-for-two,mountain_bike") == [920, 444, 671]
    assert labels.resolve("Traffic Light") == [920]
    assert labels.resolve("stoplight") == [920]  # a synonym
    assert labels.resolve("bicycle,moped") == [444, 665]  # 'bicycle' only appears in 444's names


@pytest.mark.parametrize(
    ("spec", "message"), [("crane", "ambiguous"), ("zzzz", "unknown class"), ("1000", "out of range"), (",", "no classes")]
)
def test_resolve_errors(spec, message):
    with pytest.raises(UsageError, match=message):
        Labels().resolve(spec)


def test_generic_labels_for_other_class_counts():
    labels = Labels(3)
    assert labels.name(2) == "class_2"
    assert labels.resolve("1") == [1]


def test_safe_name():
    assert safe_name("a b/c:d") == "a_bcd"


def test_top_line_for_label_strips():
    probs = [0.0] * 1000
    probs[285], probs[282], probs[281], probs[7] = 0.7, 0.2, 0.06, 0.04
    assert Labels().top_line(probs) == "Egyptian_cat 0.70  tiger_cat 0.20  tabby 0.06"
