"""The weight-sharing supernet: views, gradients, BatchNorm recalibration, training, save/reuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hwnas.core.errors import HwnasError
from hwnas.evaluation.supernet import Supernet, SupernetAccuracy, fair_paths
from hwnas.spaces import get_space
from hwnas.spaces.base import calibrate_batchnorm

TINY = {"N": 1, "growth": 8, "stem_channels": 8}


@pytest.mark.parametrize(("name", "shape", "opts"), [("mobilenet", "1x28x28", {}), ("dppnet", "1x8x8", TINY)])
def test_subnet_parameters_are_views_of_the_supernet(name: str, shape: str, opts: dict) -> None:
    space = get_space(name, input_shape=shape, **opts)
    net = Supernet(space)
    storages = {p.untyped_storage().data_ptr() for p in net.parameters()}
    for arch in space.sample(np.random.default_rng(0), 3):
        sub = net.subnet(arch)
        assert not list(sub.parameters())  # nothing of its own: every weight is a view
        reference = space.build(arch)
        tensors = [getattr(m, n) for m in sub.modules() for n in ("weight", "bias")
                   if isinstance(getattr(m, n, None), torch.Tensor)]
        assert len(tensors) == len(list(reference.parameters()))
        assert all(t.untyped_storage().data_ptr() in storages for t in tensors)
        out = sub.train()(torch.randn(4, *space.input_shape))
        out.square().mean().backward()
        assert sum(p.grad.abs().sum() for p in net.parameters() if p.grad is not None) > 0  # gradients reach it
        net.zero_grad()


def test_a_change_to_the_supernet_is_seen_by_the_subnet() -> None:
    space = get_space("dppnet", input_shape="1x8x8", **TINY)
    net = Supernet(space)
    arch = space.parse("bnrelu-conv3x3+bn-conv1x1")
    sub = net.subnet(arch).eval()
    x = torch.randn(2, 1, 8, 8)
    before = sub(x).detach().clone()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1.5)
    assert not torch.allclose(sub(x), before)


def test_batchnorm_recalibration_changes_the_statistics() -> None:
    space = get_space("dppnet", input_shape="1x8x8", **TINY)
    sub = Supernet(space).subnet(space.parse("bnrelu-conv3x3"))
    bn = next(m for m in sub.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert torch.all(bn.running_mean == 0) and torch.all(bn.running_var == 1)
    calibrate_batchnorm(sub, (torch.rand(16, 1, 8, 8) * 3 for _ in range(2)))
    assert not torch.all(bn.running_mean == 0) and not torch.all(bn.running_var == 1)


def test_spos_training_learns_and_is_saved_and_reused(tmp_path: Path) -> None:
    space = get_space("dppnet", input_shape="1x8x8", **TINY)
    path = tmp_path / "supernet.pt"
    est = SupernetAccuracy(space, dataset="digits", path=str(path), epochs=30, threads=1, log=lambda _m: None)
    archs = space.sample(np.random.default_rng(1), 4)
    accs = est.evaluate(archs)["accuracy"]
    assert path.is_file() and est.train_seconds > 0
    # well above chance (10%) after 30 epochs of SPOS (~600 steps, shared by four cell lengths)
    assert accs.mean() > 30.0 and np.all(accs > 20.0)
    again = SupernetAccuracy(space, dataset="digits", path=str(path), epochs=30, threads=1)
    assert again.train_seconds == est.train_seconds  # loaded, not retrained
    np.testing.assert_allclose(again.evaluate(archs)["accuracy"], accs)
    with pytest.raises(HwnasError, match=r"other settings \(settings\.epochs is 30, this run needs 31\)"):
        SupernetAccuracy(space, dataset="digits", path=str(path), epochs=31, threads=1)
    # an evaluation-only setting reuses the trained weights (and keeps the file's name)
    more = SupernetAccuracy(space, dataset="digits", path=str(path), epochs=30, calib_batches=16, threads=1)
    assert more.train_seconds == est.train_seconds and more.settings.key() == est.settings.key()
    assert more.describe()["evaluation"] == {"calib_batches": 16, "score": "expected"}
    # the score is evaluation-only too; top-1 counts whole validation images, the default does not
    top1 = SupernetAccuracy(space, dataset="digits", path=str(path), epochs=30, score="top1", threads=1)
    assert top1.settings.key() == est.settings.key() and top1.train_seconds == est.train_seconds
    hits = top1.evaluate(archs)["accuracy"] * len(top1.splits.val) / 100.0
    np.testing.assert_allclose(hits, np.round(hits), atol=1e-9)
    assert not np.allclose(accs, top1.evaluate(archs)["accuracy"])
    assert np.all((accs > 0) & (accs < 100))
    with pytest.raises(HwnasError, match="option score='loss': not one of expected, top1"):
        SupernetAccuracy(space, dataset="digits", path=str(path), epochs=30, score="loss", threads=1)


def test_supernet_errors() -> None:
    with pytest.raises(HwnasError, match="mobilenet and dppnet"):
        Supernet(get_space("nb201", input_shape="3x8x8", N=1))
    with pytest.raises(HwnasError, match="unknown option 'epoch'"):
        SupernetAccuracy(get_space("dppnet", input_shape="1x8x8", **TINY), dataset="digits", epoch=2)


def test_a_width_split_gives_each_width_its_own_weights() -> None:
    space = get_space("mobilenet", input_shape="1x28x28", scale=0.25)
    whole, split = Supernet(space), Supernet(space, split="width")
    assert len(split.weights) == 4 * len(whole.weights)  # one sub-supernet per width multiplier
    ptrs = lambda arch: {p.untyped_storage().data_ptr() for m in split.subnet(arch).modules()  # noqa: E731
                         for n in ("weight", "bias") if isinstance(p := getattr(m, n, None), torch.Tensor)}
    narrow = ptrs(space.parse("w0.25_k3e6_k3e1_k3e1_k3e1_k3e1_k3e1"))
    assert narrow == ptrs(space.parse("w0.25_k7e6_k5e1_k3e1_k3e1_k3e1_k3e1"))  # same width: shared
    assert not narrow & ptrs(space.parse("w0.5_k3e6_k3e1_k3e1_k3e1_k3e1_k3e1"))  # other width: nothing shared
    with pytest.raises(HwnasError, match=r"space dppnet cannot be split on 'width' \(splits: none, layers\)"):
        SupernetAccuracy(get_space("dppnet", input_shape="1x8x8", **TINY), dataset="digits", split="width")
    with pytest.raises(HwnasError, match=r"space mobilenet cannot be split on 'depth' \(splits: none, width\)"):
        SupernetAccuracy(space, dataset="mnist5k", split="depth")


def test_dppnet_layers_are_shared_across_cell_lengths_unless_split() -> None:
    space = get_space("dppnet", input_shape="1x8x8", **TINY)
    whole, split = Supernet(space), Supernet(space, split="layers")
    short, long = space.parse("bnrelu-conv3x3+id-conv1x1"), space.parse("bnrelu-conv3x3+id-conv1x1+bn-dwsep3x3")

    def kernel(net: Supernet, arch, stage: int, layer: int) -> torch.Tensor:  # noqa: ANN001
        dense = [i for i, b in enumerate(space.blocks(arch)) if b.kind == "dense"]
        cell = len(dense) // 3
        block = net.subnet(arch).blocks[dense[stage * cell + layer]]
        return [m for m in block.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight

    # the first stage's layers see the same inputs in cells of any length: one tensor, unless split
    assert kernel(whole, short, 0, 1).data_ptr() == kernel(whole, long, 0, 1).data_ptr()
    assert kernel(split, short, 0, 1).data_ptr() != kernel(split, long, 0, 1).data_ptr()
    # later stages' inputs are narrower after a shorter cell: the new channels come first, so the
    # short cell's kernel is the leading-channel view of the long one's (8 growth + 12 of 16 stage inputs)
    k_short, k_long = kernel(whole, short, 1, 1), kernel(whole, long, 1, 1)
    assert (k_short.shape[1], k_long.shape[1]) == (20, 24) and k_short.data_ptr() == k_long.data_ptr()
    # a transition reads the last cell's layers newest first: the short cell's two layers and the
    # stage input sit 8 channels (one missing layer) into the long cell's transition kernel
    def transition(net: Supernet, arch) -> torch.Tensor:  # noqa: ANN001
        i = next(i for i, b in enumerate(space.blocks(arch)) if b.kind == "transition")
        return [m for m in net.subnet(arch).blocks[i].modules() if isinstance(m, torch.nn.Conv2d)][0].weight

    t_short, t_long = transition(whole, short), transition(whole, long)
    assert (t_short.shape[1], t_long.shape[1]) == (24, 32)
    assert t_short.data_ptr() == t_long[:, 8:].data_ptr()
    with torch.no_grad():  # the same storage: a change to the long cell's weights is the short cell's
        t_long[:, 8:9] += 1.0
    torch.testing.assert_close(t_short[:, :1], t_long[:12, 8:9])
    assert len(split.weights) > len(whole.weights)
    with pytest.raises(HwnasError, match=r"space dppnet cannot be split on 'width' \(splits: none, layers\)"):
        Supernet(space, split="width")


def test_kernel_and_expansion_choices_share_one_tensor_centre_and_leading_channels() -> None:
    space = get_space("mobilenet", input_shape="1x28x28", scale=0.25)
    net = Supernet(space)

    def first_depthwise(arch: object) -> torch.Tensor:
        sub = net.subnet(arch)
        block = sub.get_submodule("blocks.1")
        return next(getattr(m, "weight") for m in block.modules()
                    if isinstance(m, torch.nn.Conv2d) and m.groups > 1)

    k3 = first_depthwise(space.from_settings(width="1.0", stages=[[(3, 6)]] * 6))
    k7 = first_depthwise(space.from_settings(width="1.0", stages=[[(7, 6)]] * 6))
    k7e3 = first_depthwise(space.from_settings(width="1.0", stages=[[(7, 3)]] * 6))
    assert k3.shape[-1] == 3 and k7.shape[-1] == 7 and k7e3.shape[0] == k7.shape[0] // 2
    assert k3.untyped_storage().data_ptr() == k7.untyped_storage().data_ptr()
    assert torch.equal(k3, k7[:, :, 2:5, 2:5])  # the 3x3 kernel is the centre of the 7x7 one
    assert torch.equal(k7e3, k7[: k7e3.shape[0]])  # a smaller expansion uses the leading channels


def test_a_standalone_copy_computes_what_the_subnet_computes() -> None:
    space = get_space("mobilenet", input_shape="1x28x28", scale=0.25)
    net = Supernet(space)
    arch = space.sample(np.random.default_rng(3), 1)[0]
    sub, own = net.subnet(arch).eval(), net.standalone(arch).eval()
    assert len(list(own.parameters())) > 0
    x = torch.randn(3, 1, 28, 28)
    calibrate_batchnorm(sub, [x])
    calibrate_batchnorm(own, [x])
    with torch.no_grad():
        assert torch.allclose(sub(x), own(x), atol=1e-5)


@pytest.mark.parametrize(("name", "shape", "opts"), [("mobilenet", "1x28x28", {"scale": 0.25}), ("dppnet", "1x8x8", TINY)])
def test_the_sandwich_pair_bounds_the_compute_of_random_architectures(name: str, shape: str, opts: dict) -> None:
    from hwnas.spaces.facts import describe

    space = get_space(name, input_shape=shape, **opts)
    largest, smallest = space.sandwich()
    big, small = describe(space, largest).macs, describe(space, smallest).macs
    macs = [describe(space, a).macs for a in space.sample(np.random.default_rng(3), 12)]
    assert small <= min(macs) and max(macs) <= big and small < big


def test_sandwich_training_takes_largest_smallest_and_random_paths_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    space = get_space("dppnet", input_shape="1x8x8", **TINY)
    seen: list[str] = []
    original = Supernet.subnet

    def recording(self: Supernet, arch):  # type: ignore[no-untyped-def]
        seen.append(arch.string)
        return original(self, arch)

    monkeypatch.setattr(Supernet, "subnet", recording)
    est = SupernetAccuracy(space, dataset="digits", epochs=8, sampling="sandwich", paths=2, threads=1, log=lambda _m: None)
    largest, smallest = space.sandwich()
    steps = [seen[i:i + 4] for i in range(0, len(seen), 4)]
    assert len(seen) % 4 == 0 and len(steps) > 100
    assert all(s[0] == largest.string and s[1] == smallest.string for s in steps)
    assert len({a for s in steps for a in s[2:]}) > 50  # the random paths vary
    accs = est.evaluate([largest, smallest])["accuracy"]
    assert np.all(accs > 50.0)  # both ends of the sandwich learn (chance is 10%)


def test_fair_paths_use_every_choice_of_every_decision() -> None:
    rng = np.random.default_rng(0)
    for space in (get_space("dppnet", input_shape="1x8x8", **TINY), get_space("mobilenet", input_shape="1x28x28", scale=0.25)):
        card = space.cardinalities()
        for _ in range(5):
            paths = fair_paths(space, rng)
            assert len(paths) == max(card)
            # the first gene is always active (dppnet's cell length, mobilenet's width): decode keeps it
            assert sorted({a.genes[0] for a in paths}) == list(range(card[0]))
    dpp = get_space("dppnet", input_shape="1x8x8", **TINY)
    layer0 = [[a.genes[1] for a in fair_paths(dpp, rng)] for _ in range(20)]  # the first layer always exists
    convs = [[a.genes[2] for a in fair_paths(dpp, rng)] for _ in range(20)]
    assert all(sorted(c) == list(range(max(dpp.cardinalities()))) for c in convs)  # the widest: each once
    assert all(set(n) == {0, 1, 2} for n in layer0)  # narrower: each at least once
    assert len({tuple(c) for c in convs}) > 10  # the draws vary


def test_fair_training_draws_one_fair_group_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    space = get_space("dppnet", input_shape="1x8x8", **TINY)
    seen: list[tuple[int, ...]] = []
    original = Supernet.subnet

    def recording(self: Supernet, arch):  # type: ignore[no-untyped-def]
        seen.append(arch.genes)
        return original(self, arch)

    monkeypatch.setattr(Supernet, "subnet", recording)
    est = SupernetAccuracy(space, dataset="digits", epochs=1, sampling="fair", threads=1, log=lambda _m: None)
    width = max(space.cardinalities())
    assert len(seen) == width * -(-len(est.splits.train) // est.settings.batch_size)  # one group per training batch
    groups = [seen[i:i + width] for i in range(0, len(seen), width)]
    assert all(sorted(g[2] for g in group) == list(range(width)) for group in groups)


@pytest.mark.parametrize("over", ["genes", "architectures"])
def test_uniform_over_chooses_how_random_paths_are_drawn(over: str, monkeypatch: pytest.MonkeyPatch) -> None:
    space = get_space("dppnet", input_shape="1x8x8", **TINY)
    calls: dict[str, list[int]] = {"genes": [], "architectures": []}
    per_gene, per_arch = space.sample, space.sample_architectures

    def genes(rng, n=1):  # type: ignore[no-untyped-def]
        calls["genes"].append(n)
        return per_gene(rng, n)

    def architectures(rng, n=1):  # type: ignore[no-untyped-def]
        calls["architectures"].append(n)
        return per_arch(rng, n)

    monkeypatch.setattr(space, "sample", genes)
    monkeypatch.setattr(space, "sample_architectures", architectures)
    est = SupernetAccuracy(space, dataset="digits", epochs=1, paths=2, uniform_over=over, threads=1, log=lambda _m: None)
    steps = -(-len(est.splits.train) // est.settings.batch_size)
    assert calls[over] == [2] * steps  # every training step draws its paths the chosen way, and only so
    assert calls["architectures" if over == "genes" else "genes"] == []
    assert (est.settings.key() == type(est.settings)(epochs=1, paths=2).key()) == (over == "genes")  # a training setting


def test_supernet_sampling_errors() -> None:
    space = get_space("dppnet", input_shape="1x8x8", **TINY)
    with pytest.raises(HwnasError, match="option sampling='greedy': not one of uniform, sandwich, fair"):
        SupernetAccuracy(space, dataset="digits", sampling="greedy")
    with pytest.raises(HwnasError, match="option uniform_over='layers': not one of genes, architectures"):
        SupernetAccuracy(space, dataset="digits", uniform_over="layers")
    with pytest.raises(HwnasError, match="uniform_over applies to random paths .* not to sampling=fair"):
        SupernetAccuracy(space, dataset="digits", sampling="fair", uniform_over="architectures")
    with pytest.raises(HwnasError, match=r"option paths=0: must be in \[1, 1000\]"):
        SupernetAccuracy(space, dataset="digits", paths=0)


def test_a_supernet_saved_before_the_sampling_settings_existed_still_loads(tmp_path: Path) -> None:
    space = get_space("dppnet", input_shape="1x8x8", **TINY)
    path = tmp_path / "supernet.pt"
    est = SupernetAccuracy(space, dataset="digits", path=str(path), epochs=1, threads=1, log=lambda _m: None)
    saved = torch.load(path, weights_only=False)
    for key in ("sampling", "paths"):  # what a supernet saved by the previous release lacks
        del saved["meta"]["settings"][key]
    saved["meta"]["settings"]["calib_batches"] = 4  # and what it still recorded as a training setting
    torch.save(saved, path)
    again = SupernetAccuracy(space, dataset="digits", path=str(path), epochs=1, threads=1)
    assert again.train_seconds == est.train_seconds  # loaded, not retrained
    with pytest.raises(HwnasError, match="other settings \\(settings.sampling is 'uniform', this run needs 'sandwich'\\)"):
        SupernetAccuracy(space, dataset="digits", path=str(path), epochs=1, sampling="sandwich", threads=1)
    saved["meta"]["sharing"] -= 1  # a supernet from an older sharing scheme
    torch.save(saved, path)
    with pytest.raises(HwnasError, match=r"supernet\.pt: .*\(sharing is \d+, this run needs \d+\)"):
        SupernetAccuracy(space, dataset="digits", path=str(path), epochs=1, threads=1)


class _PositionalMBConv(torch.nn.Module):
    """MBConv as it was before its parts were named: one Sequential, so an e=1 block's depthwise
    kernel sat at the path where e>1 blocks keep their expansion."""

    def __init__(self, cin: int, cout: int, kernel: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = cin * expansion
        layers = [torch.nn.Conv2d(cin, hidden, 1, bias=False), torch.nn.BatchNorm2d(hidden)] if expansion != 1 else []
        layers += [torch.nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False),
                   torch.nn.Conv2d(hidden, cout, 1, bias=False)]
        self.body = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_mbconv_shares_by_role_and_a_role_clash_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    space = get_space("mobilenet", input_shape="1x28x28", scale=0.25)
    net = Supernet(space)
    e1 = net.subnet(space.parse("w1.0_k7e1_k3e1_k3e1_k3e1_k3e1_k3e1")).blocks[1]
    e6 = net.subnet(space.parse("w1.0_k3e6_k3e1_k3e1_k3e1_k3e1_k3e1")).blocks[1]
    ptr = lambda t: t.untyped_storage().data_ptr()  # noqa: E731
    assert e1.expand is None and e6.expand is not None
    # the e=1 depthwise kernel is the centre of the e=6 one's leading channels, and touches no expansion
    assert ptr(e1.depthwise[0].weight) == ptr(e6.depthwise[0].weight)
    assert ptr(e6.expand[0].weight) != ptr(e6.depthwise[0].weight)
    assert ptr(e1.project[0].weight) == ptr(e6.project[0].weight)

    import hwnas.spaces.mobilenet as mobilenet

    monkeypatch.setattr(mobilenet, "MBConv", _PositionalMBConv)
    with pytest.raises(HwnasError, match=r"sharing slot s1b1/body\.0\.weight holds both"):
        Supernet(space)


def test_mbconv_loads_weights_saved_with_positional_names() -> None:
    space = get_space("mobilenet", input_shape="1x28x28", scale=0.25)
    arch = space.parse("w0.5_k3e6,k5e1_k3e3_k7e1_k3e1_k3e6_k5e3")
    model = space.build(arch, seed=3).eval()
    legacy = {}
    for key, value in model.state_dict().items():  # how the same weights were named before
        parts = key.split(".")
        if parts[0] == "blocks" and parts[2] in ("expand", "depthwise", "project"):
            block = model.blocks[int(parts[1])]
            order = (["expand"] if block.expand is not None else []) + ["depthwise", "project"]
            key = ".".join(parts[:2] + ["body", str(3 * order.index(parts[2]) + int(parts[3]))] + parts[4:])
        legacy[key] = value
    assert any(".body." in k for k in legacy)
    fresh = space.build(arch, seed=4).eval()
    fresh.load_state_dict(legacy)  # strict: every key found a home
    x = torch.randn(2, *space.input_shape)
    torch.testing.assert_close(fresh(x), model(x))


def test_an_ensemble_averages_supernets_of_consecutive_seeds_and_reuses_a_lone_one(tmp_path: Path) -> None:
    from hwnas.evaluation.accuracy import ACCURACY
    from hwnas.evaluation.supernet import SupernetEnsemble, member_path

    space = get_space("dppnet", input_shape="1x8x8", **TINY)
    quiet = {"dataset": "digits", "epochs": 2, "threads": 1, "log": lambda _m: None}
    path = tmp_path / "supernet.pt"
    lone = SupernetAccuracy(space, path=str(path), seed=3, **quiet)
    ens = ACCURACY.get("supernet")(space, path=str(path), seed=3, ensemble=2, **quiet)
    assert isinstance(ens, SupernetEnsemble)
    assert ens.members[0].train_seconds == lone.train_seconds  # the lone supernet is member 0, loaded
    second = member_path(path, 3, 1)
    assert second == tmp_path / "supernet-seed4.pt" and second.is_file()
    alone4 = SupernetAccuracy(space, path=str(second), seed=4, **quiet)  # loads member 1
    archs = space.sample(np.random.default_rng(5), 3)
    a3, a4 = lone.evaluate(archs)["accuracy"], alone4.evaluate(archs)["accuracy"]
    assert not np.array_equal(a3, a4)  # two seeds, two different supernets
    np.testing.assert_allclose(ens.evaluate(archs)["accuracy"], (a3 + a4) / 2)
    info = ens.describe()
    assert info["ensemble"] == 2 and info["seeds"] == [3, 4] and info["proxy"] is True
    assert info["paths"] == [str(path), str(second)]
    with pytest.raises(HwnasError, match=r"option ensemble=0: must be in \[1, 1000\]"):
        SupernetEnsemble(space, ensemble=0, **quiet)


def test_share_convs_gives_every_norm_choice_of_a_layer_the_same_conv_weights() -> None:
    space = get_space("dppnet", input_shape="1x8x8", **TINY)
    archs = [space.parse(f"{norm}-conv3x3+bn-conv1x1") for norm in ("bnrelu", "bn", "id")]

    def conv_of_first_layer(net: Supernet, arch) -> torch.Tensor:
        sub = net.subnet(arch)
        return next(m for m in sub.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)
                    and m.in_channels == TINY["stem_channels"]).weight

    shared, apart = Supernet(space, share_convs=True), Supernet(space)
    assert len(list(shared.parameters())) < len(list(apart.parameters()))
    same = [conv_of_first_layer(shared, a) for a in archs]
    assert all(w.data_ptr() == same[0].data_ptr() and torch.equal(w, same[0]) for w in same)
    assert len({conv_of_first_layer(apart, a).data_ptr() for a in archs}) == 3
    # and the subnet is still the space's own model, all views, with gradients into the supernet
    for arch in archs:
        sub = shared.subnet(arch)
        assert not list(sub.parameters())
        sub.train()(torch.randn(4, 1, 8, 8)).square().mean().backward()
    conv = shared.weights[shared.names[("st0c0l0-conv3x3", "body.0.weight")]]
    norm = shared.weights[shared.names[("st0c0l0-norm", "body.0.weight")]]
    assert conv.grad is not None and conv.grad.abs().sum() > 0 and norm.grad.abs().sum() > 0
    with pytest.raises(HwnasError, match="share_convs"):
        Supernet(get_space("mobilenet", input_shape="1x28x28"), share_convs=True)
    with pytest.raises(HwnasError, match=r"option share_convs='maybe': give 1 or 0"):
        SupernetAccuracy(space, dataset="digits", share_convs="maybe")
    # a flag from the command line (1, "true") names the same saved supernet as True, and another than the default
    from hwnas.evaluation.supernet import SupernetSettings

    keys = {SupernetSettings(share_convs=v).key() for v in (True, 1, "true", "yes")}
    assert len(keys) == 1 and keys != {SupernetSettings().key()} and SupernetSettings(share_convs="0").key() == SupernetSettings().key()
