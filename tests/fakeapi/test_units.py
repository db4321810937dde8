"""Unit tests of the fake apiserver's pure parts (selectors, patches, Table cells, store rules).
Run by `cargo test --test fake_apiserver` (python_unit_tests_pass) or directly:
    python3 -m unittest discover -s tests/fakeapi -p 'test_*.py'
"""

import datetime
import sys
import unittest

sys.dont_write_bytecode = True

import kpatch  # noqa: E402
import kresources  # noqa: E402
import kselectors  # noqa: E402
import kstore  # noqa: E402

SVC = kresources.lookup("", "v1", "services")


def labels_match(selector, labels):
    return kselectors.match_labels(kselectors.parse_labels(selector), labels)


class LabelSelectors(unittest.TestCase):
    def test_operators(self):
        labels = {"app": "web", "tier": "3"}
        cases = [("app=web", True), ("app==web", True), ("app!=web", False), ("app!=db", True),
                 ("missing!=x", True), ("app in (db, web)", True), ("app notin (web)", False),
                 ("missing notin (web)", True), ("app", True), ("!app", False), ("!missing", True),
                 ("tier>2", True), ("tier<3", False), ("app=web,tier", True), ("app=web,!tier", False),
                 ("", True), ("app=", False)]
        for selector, want in cases:
            with self.subTest(selector=selector):
                self.assertEqual(labels_match(selector, labels), want)

    def test_empty_value_and_prefixed_keys(self):
        self.assertTrue(labels_match("a=", {"a": ""}))
        self.assertTrue(labels_match("kubernetes.io/service-name=web", {"kubernetes.io/service-name": "web"}))

    def test_rejects_garbage(self):
        for bad in ("app in web", "app=web,", "tier>x", "=x", "app in (a"):
            with self.subTest(selector=bad), self.assertRaises(kselectors.SelectorError):
                kselectors.parse_labels(bad)


class FieldSelectors(unittest.TestCase):
    def test_supported_fields_and_escapes(self):
        terms = kselectors.parse_fields(r"metadata.name=a\,b,spec.type!=NodePort", SVC.selectable_fields())
        self.assertEqual(terms, [("metadata.name", "=", "a,b"), ("spec.type", "!=", "NodePort")])
        self.assertTrue(kselectors.match_fields(terms, {"metadata.name": "a,b", "spec.type": "ClusterIP"}))

    def test_unknown_field(self):
        with self.assertRaisesRegex(kselectors.SelectorError, "field label not supported: spec.nope"):
            kselectors.parse_fields("spec.nope=1", SVC.selectable_fields())

    def test_missing_value_selects_empty(self):
        pods = kresources.lookup("", "v1", "pods")
        fields = kresources.field_values(pods, {"metadata": {"name": "p"}, "spec": {"hostNetwork": True}})
        self.assertEqual((fields["spec.nodeName"], fields["spec.hostNetwork"]), ("", "true"))


class Patches(unittest.TestCase):
    def test_merge_patch_rfc7386(self):
        target = {"a": {"b": 1, "c": 2}, "l": [1, 2]}
        self.assertEqual(kpatch.merge_patch(target, {"a": {"b": None, "d": 3}, "l": [3]}),
                         {"a": {"c": 2, "d": 3}, "l": [3]})

    def test_json_patch_rfc6902(self):
        doc = {"a": [1, 2], "b": {"c": 1}}
        ops = [{"op": "add", "path": "/a/-", "value": 3}, {"op": "remove", "path": "/b/c"},
               {"op": "replace", "path": "/a/0", "value": 0}, {"op": "test", "path": "/a/2", "value": 3},
               {"op": "copy", "from": "/a", "path": "/b/a"}]
        self.assertEqual(kpatch.json_patch(doc, ops), {"a": [0, 2, 3], "b": {"a": [0, 2, 3]}})
        with self.assertRaises(kpatch.PatchError):
            kpatch.json_patch(doc, [{"op": "test", "path": "/a/0", "value": 9}])

    def test_unknown_media_type(self):
        with self.assertRaises(ValueError):
            kpatch.apply("application/apply-patch+yaml", {}, {})


class Tables(unittest.TestCase):
    def test_human_age_like_kubectl(self):
        now = datetime.datetime(2025, 1, 10, tzinfo=datetime.timezone.utc)
        for secs, want in [(5, "5s"), (119, "119s"), (150, "2m30s"), (600, "10m"), (3 * 3600 + 60, "3h1m"),
                           (20 * 3600, "20h"), (3 * 86400 + 3600, "3d1h"), (9 * 86400, "9d")]:
            created = (now - datetime.timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.assertEqual(kresources.human_age(created, now), want)

    def test_service_row(self):
        obj = {"metadata": {"name": "web", "creationTimestamp": "2025-01-01T00:00:00Z"},
               "spec": {"type": "NodePort", "clusterIP": "10.96.0.5", "selector": {"app": "web"},
                        "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}}
        now = datetime.datetime(2025, 1, 1, 0, 0, 30, tzinfo=datetime.timezone.utc)
        row = kresources.table_row(SVC, obj, now, "Metadata")
        self.assertEqual(row["cells"], ["web", "NodePort", "10.96.0.5", "<none>", "80:30080/TCP", "30s", "app=web"])
        self.assertEqual(row["object"]["kind"], "PartialObjectMetadata")
        self.assertEqual(len(kresources.table_columns(SVC)), len(row["cells"]))


class StoreRules(unittest.TestCase):
    def setUp(self):
        self.store = kstore.Store()

    def test_finalizers_delay_deletion(self):
        self.store.create(SVC, "a", {"metadata": {"name": "f", "finalizers": ["x/y"]}})
        self.store.delete(SVC, "a", "f")
        self.assertIn("deletionTimestamp", self.store.get(SVC, "a", "f").obj()["metadata"])
        self.store.patch(SVC, "a", "f", kpatch.MERGE, {"metadata": {"finalizers": None}})
        with self.assertRaises(kstore.ApiError):
            self.store.get(SVC, "a", "f")
        types = [e.type for e in self.store.bucket(SVC).history]
        self.assertEqual(types, ["ADDED", "MODIFIED", "DELETED"])

    def test_namespace_delete_removes_contents(self):
        ns = kresources.lookup("", "v1", "namespaces")
        self.store.create(ns, "", {"metadata": {"name": "a"}})
        self.store.create(SVC, "a", {"metadata": {"name": "s"}})
        self.store.delete(ns, "", "a")
        self.assertEqual(self.store.bucket(SVC).objects, {})

    def test_require_namespaces(self):
        strict = kstore.Store(require_namespaces=True)
        with self.assertRaises(kstore.ApiError) as err:
            strict.create(SVC, "nope", {"metadata": {"name": "s"}})
        self.assertEqual(err.exception.code, 404)

    def test_status_is_a_subresource(self):
        self.store.create(SVC, "a", {"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer"}})
        status = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
        self.store.replace(SVC, "a", "lb", {"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer"},
                                            "status": status})
        self.assertNotIn("status", self.store.get(SVC, "a", "lb").obj())
        self.store.replace(SVC, "a", "lb", {"status": status}, subresource="status")
        self.assertEqual(self.store.get(SVC, "a", "lb").obj()["status"], status)


if __name__ == "__main__":
    unittest.main()
