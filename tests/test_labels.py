import re

import numpy as np
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


def test_resolve_ids_synsets_and_exact_names():
    labels = Labels()
    assert labels.resolve("920") == [920]
    assert labels.resolve("traffic_light, bicycle-built-for-two,mountain_bike") == [920, 444, 671]
    assert labels.resolve("Traffic Light") == [920]
    assert labels.resolve("stoplight") == [920]  # a synonym
    assert labels.resolve("n06874185") == [920]  # its synset
    assert labels.resolve("bicycle built for two,moped") == [444, 665]  # '-', '_' and ' ' alike
    assert labels.resolve("jack-o-lantern") == labels.resolve("jack-o'-lantern") == [607]  # the CSV's safe name too


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("crane", r"'crane' names 2 classes: 134 crane \(n02012849\), 517 crane \(n03126707\); give the id"),
        ("panda", "387 lesser_panda, 388 giant_panda"),
        # Only part of a name is never taken: 'bicycle' used to become 444, the tandem, silently.
        ("bicycle", r"'bicycle' is not a class name, only part of one: 444 bicycle-built-for-two; .*streamcam classes bicycle"),
        ("traffic,920", "only part of one: 920 traffic_light"),
        ("mountain_bike+bicycle", "'bicycle' is not a class name, only part of one"),  # a group's members resolve alike
        ("mountain_bike+", "a group is class names or ids joined by"),
        ("zzzz", "unknown class"),
        ("1000", "out of range"),
        (",", "no classes"),
    ],
)
def test_resolve_refuses_what_is_not_one_exact_class(spec, message):
    with pytest.raises(UsageError, match=message):
        Labels().resolve(spec)


def test_ids_take_names_wherever_ids_go():
    labels = Labels()
    assert labels.ids(["traffic_light", 444, np.int64(671), "920"]) == [920, 444, 671, 920]  # repeats kept: the caller's layout
    assert labels.ids("traffic_light,mountain_bike") == [920, 671]
    assert labels.ids(5) == [5] and labels.ids(()) == []
    with pytest.raises(UsageError, match="out of range"):
        labels.ids([-1])


def test_search_lists_matching_classes():
    labels = Labels()
    assert [c.class_id for c in labels.search("bike")] == [671]
    assert [c.class_id for c in labels.search("Traffic Light")] == [920]
    assert [c.class_id for c in labels.search("crane")] == [134, 517]
    assert [c.class_id for c in labels.search("n02835271")] == [444]
    assert [c.class_id for c in labels.search("444")] == [444]
    assert labels.search("zzzz") == [] and labels.search("1000") == []
    assert len(labels.search("")) == 1000


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
