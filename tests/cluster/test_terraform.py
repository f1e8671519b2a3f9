"""Terraform: fmt, AWS init (offline mirror) + validate + `terraform test` on a mock provider, IONOS HCL assertions."""

from __future__ import annotations

import re

import hcl2
import pytest

from .conftest import ROOT, run

IONOS = ROOT / "terraform" / "modules" / "ionos"
AWS = ROOT / "terraform" / "modules" / "aws"


def test_fmt_is_clean(terraform_bin, terraform_env):
    res = run([terraform_bin, "fmt", "-check", "-recursive", "-diff", "-no-color", str(ROOT / "terraform")],
              env=terraform_env)  # fmt: skip
    assert res.returncode == 0, f"terraform fmt would change files:\n{res.stdout}{res.stderr}"


@pytest.mark.parametrize("which", ["module", "example"])
def test_aws_validates(aws_initialized, terraform_bin, terraform_env, which):
    res = run([terraform_bin, "validate", "-no-color"], cwd=aws_initialized[which], env=terraform_env)
    assert res.returncode == 0, f"terraform validate ({which}):\n{res.stdout}{res.stderr}"
    assert "Warning" not in res.stdout + res.stderr, res.stdout + res.stderr


def test_aws_terraform_test_on_mock_provider(aws_initialized, terraform_bin, terraform_env):
    res = run([terraform_bin, "test", "-no-color"], cwd=aws_initialized["module"], env=terraform_env, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    summary = re.search(r"Success! (\d+) passed, 0 failed", out)
    assert summary, out
    # every run block in the test file ran (a silently skipped run would not count)
    runs = len(re.findall(r'^run "', (AWS / "tests" / "plan.tftest.hcl").read_text(), re.M))
    assert int(summary.group(1)) == runs, out


@pytest.mark.parametrize(
    ("file", "old", "new", "run_name", "message"),
    [
        ("s3.tf", "block_public_acls       = true", "block_public_acls       = false",
         "bucket_is_private_encrypted_versioned", "every public-access block flag must be true"),
        ("addons.tf", 'enableNetworkPolicy = "true"', 'enableNetworkPolicy = "false"',
         "addons_pinned_network_policy_on_ebs_csi_with_irsa", "the VPC CNI must enforce NetworkPolicies"),
    ],
    ids=["public-bucket", "cni-without-network-policy"],
)  # fmt: skip
def test_aws_plan_tests_bite(
    aws_initialized, terraform_bin, terraform_env, tmp_path, file, old, new, run_name, message
):
    """The plan tests bite: a mutated module copy makes the matching run of `terraform test` fail."""
    src = aws_initialized["module"]
    work = tmp_path / "aws"
    (work / "tests").mkdir(parents=True)
    for tf in src.glob("*.tf"):
        (work / tf.name).write_text(tf.read_text())
    (work / ".terraform").symlink_to(src / ".terraform")
    (work / ".terraform.lock.hcl").write_text((src / ".terraform.lock.hcl").read_text())
    target = work / file
    assert old in target.read_text()
    target.write_text(target.read_text().replace(old, new))
    # only the mock provider, the variables and the one run: one plan instead of the whole file
    original = (src / "tests" / "plan.tftest.hcl").read_text()
    one_run = re.search(rf'run "{run_name}" \{{.*?\n\}}\n', original, re.S).group(0)
    (work / "tests" / "bite.tftest.hcl").write_text(original[: original.index('run "')] + one_run)
    res = run([terraform_bin, "test", "-no-color"], cwd=work, env=terraform_env)
    assert res.returncode != 0, res.stdout
    assert message in res.stdout + res.stderr


# --- IONOS: no provider on this machine, so the HCL itself is asserted --------------------------------------------


def _norm(value):
    """python-hcl2 keeps HCL's quotes on block labels and strings: drop them."""
    if isinstance(value, dict):
        return {_norm(k): _norm(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _load(path):
    with open(path) as fh:
        return _norm(hcl2.load(fh))


def _merged(directory) -> dict:
    merged: dict[str, list] = {}
    for tf in sorted(directory.glob("*.tf")):
        for key, value in _load(tf).items():
            merged.setdefault(key, []).extend(value)
    return merged


def _resources(doc) -> dict[tuple[str, str], dict]:
    out = {}
    for block in doc.get("resource", []):
        for rtype, named in block.items():
            for name, body in named.items():
                out[(rtype, name)] = body
    return out


@pytest.fixture(scope="module")
def ionos():
    return _merged(IONOS)


def test_ionos_required_resources_and_attributes(ionos):
    res = _resources(ionos)
    required = {
        ("ionoscloud_datacenter", "this"): {"name", "location"},
        ("ionoscloud_k8s_cluster", "this"): {"name", "k8s_version", "api_subnet_allow_list", "maintenance_window"},
        ("ionoscloud_k8s_node_pool", "default"): {
            "name",
            "k8s_cluster_id",
            "datacenter_id",
            "k8s_version",
            "cpu_family",
            "availability_zone",
            "storage_type",
            "node_count",
            "cores_count",
            "ram_size",
            "storage_size",
            "auto_scaling",
        },  # fmt: skip
        ("ionoscloud_s3_bucket", "this"): {"name", "region"},
        ("ionoscloud_s3_bucket_public_access_block", "this"): {"bucket"},
        ("ionoscloud_s3_bucket_versioning", "this"): {"bucket", "versioning_configuration"},
        ("ionoscloud_s3_bucket_server_side_encryption_configuration", "this"): {"bucket", "rule"},
        ("ionoscloud_s3_key", "platform"): {"user_id"},
        ("ionoscloud_s3_bucket_policy", "this"): {"bucket", "policy"},
    }
    for key, attrs in required.items():
        assert key in res, f"missing resource {key}"
        missing = attrs - set(res[key])
        assert not missing, f"{key} lacks {sorted(missing)}"


def test_ionos_node_pool_sizes_come_from_variables(ionos):
    pool = _resources(ionos)[("ionoscloud_k8s_node_pool", "default")]
    assert pool["node_count"] == "${var.node_count}"
    assert pool["cores_count"] == "${var.node_cores}"
    assert pool["ram_size"] == "${var.node_ram_mb}"
    scaling = pool["auto_scaling"][0]
    assert scaling["min_node_count"] == "${var.node_min_count}"
    assert scaling["max_node_count"] == "${var.node_max_count}"


def test_ionos_bucket_private_encrypted_versioned(ionos):
    res = _resources(ionos)
    block = res[("ionoscloud_s3_bucket_public_access_block", "this")]
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert block.get(flag) is True, f"{flag} must be true"
    sse = res[("ionoscloud_s3_bucket_server_side_encryption_configuration", "this")]["rule"][0]
    assert (sse["apply_server_side_encryption_by_default"][0]["sse_algorithm"]) == "AES256"
    versioning = res[("ionoscloud_s3_bucket_versioning", "this")]["versioning_configuration"][0]
    assert (versioning["status"]) == "Enabled"
    assert res[("ionoscloud_s3_bucket", "this")].get("force_destroy") is False
    for key in [k for k in res if k[0].startswith("ionoscloud_s3_bucket_")]:
        assert res[key]["bucket"] == "${ionoscloud_s3_bucket.this.name}", f"{key} must target the platform bucket"


def test_ionos_outputs_and_secret_handling(ionos):
    outputs = {name: body for block in ionos["output"] for name, body in block.items()}
    for name in ("cluster_id", "cluster_name", "kubeconfig_command", "bucket_name", "s3_endpoint", "s3_access_key_id",
                 "s3_secret_access_key"):  # fmt: skip
        assert name in outputs, f"missing output {name}"
        assert outputs[name].get("description"), f"output {name} needs a description"
    assert outputs["s3_secret_access_key"].get("sensitive") is True
    # no literal credentials anywhere in the module
    text = "".join(p.read_text() for p in IONOS.glob("*.tf"))
    assert not re.search(r"(password|secret_key|token)\s*=\s*\"", text), "literal credential in the IONOS module"


@pytest.mark.parametrize("module", [IONOS, AWS], ids=["ionos", "aws"])
def test_variables_are_typed_described_and_validated(module):
    variables = {name: body for block in _merged(module)["variable"] for name, body in block.items()}
    assert variables
    for name, body in variables.items():
        assert "type" in body, f"{module.name}: variable {name} has no type"
        assert body.get("description"), f"{module.name}: variable {name} has no description"
    validated = [n for n, b in variables.items() if b.get("validation")]
    # everything a user must choose is validated (free-form maps like tags are the exception)
    free = {"tags", "create_vpc", "endpoint_public_access", "bucket_force_destroy"}
    unvalidated = set(variables) - set(validated) - free
    assert not unvalidated, f"{module.name}: variables without validation: {sorted(unvalidated)}"


@pytest.mark.parametrize("example", ["aws", "ionos"])
def test_examples_have_a_commented_remote_backend_and_no_state(example):
    main = (ROOT / "terraform" / "examples" / example / "main.tf").read_text()
    assert re.search(r'^\s*#\s*backend "s3" \{', main, re.M), "example root needs a commented S3 backend"
    assert not re.search(r'^\s*backend "', main, re.M), "the backend stays commented in the example"
    tracked = run(["git", "ls-files", "terraform"], cwd=ROOT).stdout.split()
    bad = [p for p in tracked if re.search(r"(\.tfstate|tfplan|\.terraform/|\.terraform\.lock\.hcl|\.tfvars$)", p)]
    assert not bad, f"state/plans/locks/tfvars tracked in git: {bad}"


def test_gitignore_covers_terraform_artifacts():
    for path in ("terraform/examples/aws/.terraform/x", "terraform/examples/aws/terraform.tfstate",
                 "terraform/examples/aws/terraform.tfstate.backup", "terraform/examples/aws/tfplan",
                 "terraform/examples/aws/crash.log", "terraform/examples/aws/.terraform.lock.hcl",
                 "terraform/examples/ionos/terraform.tfvars"):  # fmt: skip
        res = run(["git", "check-ignore", "-q", path], cwd=ROOT)
        assert res.returncode == 0, f"{path} is not ignored by .gitignore"


def test_ionos_example_passes_every_required_module_variable():
    module_vars = {name: body for block in _merged(IONOS)["variable"] for name, body in block.items()}
    required = {name for name, body in module_vars.items() if "default" not in body}
    example = _merged(ROOT / "terraform" / "examples" / "ionos")
    call = example["module"][0]["platform"]
    assert call["source"] == "../../modules/ionos"
    assert required <= set(call), f"example misses required inputs {sorted(required - set(call))}"
    assert set(call) - {"source"} <= set(module_vars), "example passes inputs the module does not declare"
    providers = example["terraform"][0]["required_providers"][0]
    assert providers["ionoscloud"]["source"] == "ionos-cloud/ionoscloud"


def test_ionos_provider_takes_its_object_storage_key_from_the_environment():
    """The ionoscloud_s3_* resources need an S3 key on the provider (IONOS_S3_ACCESS_KEY / IONOS_S3_SECRET_KEY) besides
    the API token; it cannot be the key the module creates (that one exists only after the apply). Once only
    IONOS_TOKEN was documented and `terraform apply` failed on the bucket."""
    example_dir = ROOT / "terraform" / "examples" / "ionos"
    example = _merged(example_dir)
    provider = example["provider"][0]["ionoscloud"]
    assert provider == {"s3_region": "${var.s3_region}"}, (
        "credentials never in a file: the provider reads them from env"
    )
    call = example["module"][0]["platform"]
    assert call["s3_region"] == "${var.s3_region}", "provider and bucket in the same region"
    main = (example_dir / "main.tf").read_text()
    readme = (ROOT / "README.md").read_text()
    taskfile = (ROOT / "Taskfile.yml").read_text()
    for var in ("IONOS_TOKEN", "IONOS_S3_ACCESS_KEY", "IONOS_S3_SECRET_KEY"):
        assert var in main and var in readme and var in taskfile, f"{var} must be documented and checked"
    module_main = (IONOS / "main.tf").read_text()
    assert "IONOS_S3_ACCESS_KEY" in module_main and "ionoscloud_s3_key.platform" in module_main


def test_ionos_bucket_policy_lets_the_platform_user_in():
    """A contract-owned bucket is closed to non-administrators: without a policy the platform's key could not read
    or write the bucket it was made for."""
    policy = _resources(_merged(IONOS))[("ionoscloud_s3_bucket_policy", "this")]["policy"]
    for needle in ("${var.contract_number}:${var.s3_user_id}", "s3:GetObject", "s3:PutObject", "s3:ListBucket",
                   "${ionoscloud_s3_bucket.this.name}/*"):  # fmt: skip
        assert needle in policy, f"bucket policy lacks {needle}"
    assert "s3:*" not in policy


def test_aws_addons_are_pinned_and_configured():
    """EKS's VPC CNI ignores NetworkPolicies unless told to enforce them, and no PVC binds without the EBS CSI driver
    (the `terraform test` runs check the planned values; this checks the pins are variables with a validation)."""
    res = _resources(_merged(AWS))
    addons = {body["addon_name"]: body for (rtype, _), body in res.items() if rtype == "aws_eks_addon"}
    assert set(addons) == {"vpc-cni", "aws-ebs-csi-driver"}
    assert addons["vpc-cni"]["addon_version"] == "${var.vpc_cni_addon_version}"
    assert addons["aws-ebs-csi-driver"]["addon_version"] == "${var.ebs_csi_addon_version}"
    assert "enableNetworkPolicy" in addons["vpc-cni"]["configuration_values"]
    assert addons["aws-ebs-csi-driver"]["service_account_role_arn"] == "${aws_iam_role.ebs_csi.arn}"


def test_cluster_versions_agree_with_the_validation_version():
    """kubernetes-validate checks the manifests against the Kubernetes minor the modules deploy by default."""
    from .conftest import K8S_VERSION

    minor = ".".join(K8S_VERSION.split(".")[:2])
    aws = {n: b for block in _merged(AWS)["variable"] for n, b in block.items()}
    ionos = {n: b for block in _merged(IONOS)["variable"] for n, b in block.items()}
    assert aws["kubernetes_version"]["default"] == minor
    assert ionos["k8s_version"]["default"].startswith(minor + ".")
