package embed

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"github.com/lookalike/lookalike/embed/spec"
	ort "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/proto"
)

// Names of the outputs New adds to the graph.
const (
	outEmbedding  = "lookalike_embedding"
	outFeatureMap = "lookalike_feature_map"
)

// TensorInfo describes a graph input, output or intermediate tensor. Shape uses -1 for symbolic or
// unknown dimensions; nil when the graph records no shape.
type TensorInfo struct {
	Name     string  `json:"name"`
	ElemType string  `json:"elem_type"`
	Shape    []int64 `json:"shape"`
}

// Candidate is a tensor that could serve as an embedding: a pooled tensor before the classifier.
type Candidate struct {
	TensorInfo
	Producer  string `json:"producer"`  // op type that computes it
	Quantized bool   `json:"quantized"` // exposing it adds a DequantizeLinear
	Note      string `json:"note"`
}

// ModelReport is what `lookalike model inspect` prints.
type ModelReport struct {
	Path       string       `json:"path"`
	SHA256     string       `json:"sha256"`
	Size       int64        `json:"size"`
	IRVersion  int64        `json:"ir_version"`
	Opset      int64        `json:"opset"`
	Producer   string       `json:"producer"`
	Inputs     []TensorInfo `json:"inputs"`
	Outputs    []TensorInfo `json:"outputs"`
	Candidates []Candidate  `json:"candidates"`
	// ProbeError says why candidate shapes the graph does not record could not be measured.
	ProbeError string `json:"probe_error,omitempty"`
}

func readModel(path string) (*onnx.ModelProto, string, int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", 0, fmt.Errorf("%w: %v", ErrModel, err)
	}
	sum := sha256.Sum256(b)
	m := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, "", 0, fmt.Errorf("%w: %s: not an ONNX model: %v", ErrModel, path, err)
	}
	if m.GetGraph() == nil || len(m.GetGraph().GetNode()) == 0 {
		return nil, "", 0, fmt.Errorf("%w: %s: not an ONNX model: no graph", ErrModel, path)
	}
	return m, hex.EncodeToString(sum[:]), int64(len(b)), nil
}

func elemName(t int32) string {
	n := onnx.TensorProto_DataType_name[t]
	if n == "" {
		return fmt.Sprint(t)
	}
	return strings.ToLower(n)
}

func valueInfo(v *onnx.ValueInfoProto) TensorInfo {
	ti := TensorInfo{Name: v.GetName()}
	tt := v.GetType().GetTensorType()
	if tt == nil {
		return ti
	}
	ti.ElemType = elemName(tt.GetElemType())
	if sh := tt.GetShape(); sh != nil {
		ti.Shape = make([]int64, len(sh.GetDim()))
		for i, d := range sh.GetDim() {
			if _, ok := d.GetValue().(*onnx.TensorShapeProto_Dimension_DimValue); ok {
				ti.Shape[i] = d.GetDimValue()
			} else {
				ti.Shape[i] = -1
			}
		}
	}
	return ti
}

// graphIndex answers "who produces this tensor" and "what do we know of its type".
type graphIndex struct {
	g        *onnx.GraphProto
	producer map[string]*onnx.NodeProto
	info     map[string]*onnx.ValueInfoProto
	init     map[string]bool
}

func indexGraph(g *onnx.GraphProto) graphIndex {
	gi := graphIndex{g: g, producer: map[string]*onnx.NodeProto{}, info: map[string]*onnx.ValueInfoProto{}, init: map[string]bool{}}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			gi.producer[o] = n
		}
	}
	for _, vs := range [][]*onnx.ValueInfoProto{g.GetInput(), g.GetOutput(), g.GetValueInfo()} {
		for _, v := range vs {
			gi.info[v.GetName()] = v
		}
	}
	for _, t := range g.GetInitializer() {
		gi.init[t.GetName()] = true
	}
	return gi
}

func (gi graphIndex) infoOf(name string) TensorInfo {
	if v, ok := gi.info[name]; ok {
		return valueInfo(v)
	}
	return TensorInfo{Name: name}
}

// quantParams returns the scale and zero-point tensors of a quantized tensor, or ok=false for a float
// tensor. The zoo's quantizer names them <base>_scale/<base>_zero_point; other producers are read
// from the QLinear op's signature.
func (gi graphIndex) quantParams(name string) (scale, zp string, ok bool) {
	n := gi.producer[name]
	if n != nil && n.GetOpType() == "DequantizeLinear" {
		return "", "", false // float by construction, even if <name>_scale exists nearby
	}
	if base, ok := strings.CutSuffix(name, "_quantized"); ok && gi.init[base+"_scale"] && gi.init[base+"_zero_point"] {
		return base + "_scale", base + "_zero_point", true
	}
	if n == nil {
		return "", "", false
	}
	in := n.GetInput()
	at := func(i, j int) (string, string, bool) {
		if len(in) > j {
			return in[i], in[j], true
		}
		return "", "", false
	}
	switch n.GetOpType() {
	case "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity":
		// layout ops keep the quantization of their input
		if len(in) > 0 {
			return gi.quantParams(in[0])
		}
	case "QuantizeLinear":
		return at(1, 2)
	case "QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QLinearConcat":
		if n.GetOpType() == "QLinearConcat" {
			return at(0, 1)
		}
		return at(6, 7)
	case "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearSigmoid", "QLinearLeakyRelu":
		return at(3, 4)
	}
	if strings.HasPrefix(n.GetOpType(), "QLinear") {
		return at(len(in)-2, len(in)-1)
	}
	return "", "", false
}

// expose makes tensor available as graph output outName (float32). Quantized tensors get a
// DequantizeLinear; flatten adds Flatten(axis=1) so the output is [batch, dim].
func expose(m *onnx.ModelProto, tensor, outName string, flatten bool) error {
	g := m.GetGraph()
	gi := indexGraph(g)
	for _, o := range g.GetOutput() {
		if o.GetName() == outName {
			return nil // already exposed (e.g. an exported copy)
		}
	}
	if gi.producer[tensor] == nil {
		if _, isInput := gi.info[tensor]; !isInput || gi.init[tensor] {
			return fmt.Errorf("%w: tensor %q is not computed by the graph", ErrModel, tensor)
		}
	}
	cur := tensor
	if scale, zp, ok := gi.quantParams(tensor); ok {
		deq := outName
		if flatten {
			deq = outName + "_dequantized"
		}
		g.Node = append(g.Node, &onnx.NodeProto{
			Name: "lookalike_node_" + deq, OpType: "DequantizeLinear",
			Input: []string{tensor, scale, zp}, Output: []string{deq},
		})
		cur = deq
	} else if ti := gi.infoOf(tensor); ti.ElemType != "" && ti.ElemType != "float" {
		return fmt.Errorf("%w: tensor %q is %s and not recognisably quantized", ErrModel, tensor, ti.ElemType)
	}
	if flatten {
		g.Node = append(g.Node, &onnx.NodeProto{
			Name: "lookalike_node_" + outName, OpType: "Flatten",
			Input: []string{cur}, Output: []string{outName},
			Attribute: []*onnx.AttributeProto{{Name: "axis", Type: onnx.AttributeProto_INT, I: 1}},
		})
		cur = outName
	}
	if cur != outName { // a float tensor exposed as is
		g.Node = append(g.Node, &onnx.NodeProto{
			Name: "lookalike_node_" + outName, OpType: "Identity",
			Input: []string{cur}, Output: []string{outName},
		})
	}
	g.Output = append(g.Output, &onnx.ValueInfoProto{
		Name: outName,
		Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: &onnx.TypeProto_Tensor{
			ElemType: int32(onnx.TensorProto_FLOAT),
		}}},
	})
	return nil
}

func opset(m *onnx.ModelProto) int64 {
	for _, o := range m.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			return o.GetVersion()
		}
	}
	return 0
}

// Inspect lists a model's inputs, outputs, opset and candidate embedding layers. runtimeLibrary is
// the ONNX Runtime library that measures the candidates' shapes ("" = DefaultRuntimeLibrary).
func Inspect(path, runtimeLibrary string) (ModelReport, error) {
	m, sum, size, err := readModel(path)
	if err != nil {
		return ModelReport{}, err
	}
	g := m.GetGraph()
	gi := indexGraph(g)
	r := ModelReport{Path: path, SHA256: sum, Size: size, IRVersion: m.GetIrVersion(), Opset: opset(m),
		Producer: strings.TrimSpace(m.GetProducerName() + " " + m.GetProducerVersion())}
	for _, v := range g.GetInput() {
		if !gi.init[v.GetName()] {
			r.Inputs = append(r.Inputs, valueInfo(v))
		}
	}
	for _, v := range g.GetOutput() {
		r.Outputs = append(r.Outputs, valueInfo(v))
	}
	seen := map[string]bool{}
	add := func(tensor, note string) {
		if seen[tensor] || gi.init[tensor] {
			return
		}
		seen[tensor] = true
		c := Candidate{TensorInfo: gi.infoOf(tensor), Note: note}
		if p := gi.producer[tensor]; p != nil {
			c.Producer = p.GetOpType()
		}
		_, _, c.Quantized = gi.quantParams(tensor)
		r.Candidates = append(r.Candidates, c)
	}
	for _, n := range g.GetNode() {
		switch n.GetOpType() {
		case "GlobalAveragePool", "QLinearGlobalAveragePool", "GlobalMaxPool", "ReduceMean":
			add(n.GetOutput()[0], "pooled output of "+n.GetOpType())
		case "Flatten", "Gemm", "MatMul", "QLinearMatMul", "Reshape":
			if len(n.GetInput()) > 0 {
				add(n.GetInput()[0], "input of "+n.GetOpType())
			}
		}
	}
	if err := probeShapes(m, &r, runtimeLibrary); err != nil {
		r.ProbeError = err.Error()
	}
	return r, nil
}

// probeShapes fills the candidates' unknown shapes by running the model once on zeros with every
// candidate exposed (quantized graphs rarely record intermediate shapes). Needs ONNX Runtime; the
// batch dimension is reported as -1.
func probeShapes(m *onnx.ModelProto, r *ModelReport, lib string) error {
	if len(r.Inputs) != 1 || len(r.Candidates) == 0 {
		return nil
	}
	in := r.Inputs[0]
	if in.ElemType != "float" || len(in.Shape) == 0 {
		return fmt.Errorf("input %s is not a float tensor of known rank", in.Name)
	}
	shape := make([]int64, len(in.Shape))
	n := int64(1)
	for i, d := range in.Shape {
		switch {
		case i == 0 && d <= 0:
			d = 1
		case d <= 0:
			return fmt.Errorf("input %s has symbolic dimension %d", in.Name, i)
		}
		shape[i] = d
		n *= d
	}
	probe := proto.Clone(m).(*onnx.ModelProto)
	var outs []string
	have := map[string]bool{}
	for _, o := range probe.GetGraph().GetOutput() {
		have[o.GetName()] = true
	}
	for _, c := range r.Candidates {
		// untyped graph outputs: ORT infers their type, whatever the tensor's element type
		if !have[c.Name] {
			probe.Graph.Output = append(probe.Graph.Output, &onnx.ValueInfoProto{Name: c.Name})
			have[c.Name] = true
		}
		outs = append(outs, c.Name)
	}
	b, err := proto.Marshal(probe)
	if err != nil {
		return err
	}
	if err := acquireORT(cmp.Or(lib, DefaultRuntimeLibrary)); err != nil {
		return err
	}
	defer releaseORT()
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(b, []string{in.Name}, outs, nil)
	if err != nil {
		return err
	}
	defer sess.Destroy()
	x, err := ort.NewTensor(ort.NewShape(shape...), make([]float32, n))
	if err != nil {
		return err
	}
	defer x.Destroy()
	vals := make([]ort.Value, len(outs))
	if err := sess.Run([]ort.Value{x}, vals); err != nil {
		return err
	}
	for i, v := range vals {
		if v == nil {
			continue
		}
		sh := v.GetShape()
		defer v.Destroy()
		if r.Candidates[i].Shape != nil {
			continue
		}
		got := make([]int64, len(sh))
		copy(got, sh)
		if len(got) > 0 && in.Shape[0] <= 0 {
			got[0] = -1
		}
		r.Candidates[i].Shape = got
		if r.Candidates[i].ElemType == "" {
			r.Candidates[i].ElemType = ortElemName(v)
		}
	}
	return nil
}

// exposedName is the graph output name ExportWithOutputs gives tensor: quantized tensors are
// dequantized into "<tensor>_dequantized", float tensors keep their name.
func exposedName(m *onnx.ModelProto, tensor string) string {
	if _, _, ok := indexGraph(m.GetGraph()).quantParams(tensor); ok {
		return tensor + "_dequantized"
	}
	return tensor
}

// ExportWithOutputs writes a copy of src whose graph outputs also include tensors (dequantized,
// original shape; a quantized tensor T is output as "T_dequantized", a float one under its own name), e.g. for tools that cannot edit graphs.
func ExportWithOutputs(src, dst string, tensors ...string) error {
	m, _, _, err := readModel(src)
	if err != nil {
		return err
	}
	for _, t := range tensors {
		name := exposedName(m, t)
		if name == t {
			if err := exposeFloatAsIs(m, t); err != nil {
				return err
			}
			continue
		}
		if err := expose(m, t, name, false); err != nil {
			return err
		}
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("%w: marshal: %v", ErrModel, err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

func exposeFloatAsIs(m *onnx.ModelProto, tensor string) error {
	g := m.GetGraph()
	gi := indexGraph(g)
	if gi.producer[tensor] == nil {
		return fmt.Errorf("%w: tensor %q is not computed by the graph", ErrModel, tensor)
	}
	for _, o := range g.GetOutput() {
		if o.GetName() == tensor {
			return nil
		}
	}
	g.Output = append(g.Output, &onnx.ValueInfoProto{Name: tensor,
		Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: &onnx.TypeProto_Tensor{
			ElemType: int32(onnx.TensorProto_FLOAT)}}}})
	return nil
}

// checkInput refuses a model whose input does not match the spec (name, float, rank 4, channels and
// size; batch and spatial dimensions may be symbolic).
func checkInput(m *onnx.ModelProto, ms spec.Model) error {
	gi := indexGraph(m.GetGraph())
	v, ok := gi.info[ms.Input]
	if !ok || gi.init[ms.Input] {
		var names []string
		for _, in := range m.GetGraph().GetInput() {
			if !gi.init[in.GetName()] {
				names = append(names, in.GetName())
			}
		}
		return fmt.Errorf("%w: no input %q (inputs: %s)", ErrModel, ms.Input, strings.Join(names, ", "))
	}
	ti := valueInfo(v)
	want := []int64{-1, 3, int64(ms.InputSize), int64(ms.InputSize)}
	if ms.Layout == "NHWC" {
		want = []int64{-1, int64(ms.InputSize), int64(ms.InputSize), 3}
	}
	if ti.ElemType != "float" || (ti.Shape != nil && len(ti.Shape) != 4) {
		return fmt.Errorf("%w: input %q is %s %v, want float %v", ErrModel, ms.Input, ti.ElemType, ti.Shape, want)
	}
	for i, d := range ti.Shape {
		if i == 0 && d != -1 {
			return fmt.Errorf("%w: input %q has fixed batch %d; a dynamic batch dimension is required", ErrModel, ms.Input, d)
		}
		if i > 0 && d != -1 && d != want[i] {
			return fmt.Errorf("%w: input %q has shape %v, spec wants %v (%s, input_size %d)", ErrModel, ms.Input, ti.Shape, want, ms.Layout, ms.InputSize)
		}
	}
	return nil
}

func ortElemName(v ort.Value) string {
	switch v.(type) {
	case *ort.Tensor[float32]:
		return "float"
	case *ort.Tensor[uint8]:
		return "uint8"
	case *ort.Tensor[int8]:
		return "int8"
	case *ort.Tensor[int64]:
		return "int64"
	case *ort.Tensor[int32]:
		return "int32"
	}
	return ""
}

// Symbolic names given to the input's spatial dimensions by makeSpatialSymbolic.
const (
	dimHeight = "lookalike_height"
	dimWidth  = "lookalike_width"
)

// makeSpatialSymbolic lets the graph take any input height and width, so regional profiles can feed
// whole photos at their own aspect ratio: the input's spatial dimensions become symbolic, and the
// shapes recorded for intermediate tensors and outputs (inferred for one input size, e.g. by the
// shared copy of the default model) are dropped so that ONNX Runtime infers them per run. A fully
// convolutional model then runs at any size; a model whose graph hard-codes its size (a Reshape to
// 7x7, say) fails at the first run at another size, which New's warm-up reports.
func makeSpatialSymbolic(m *onnx.ModelProto, input, layout string) error {
	g := m.GetGraph()
	var in *onnx.ValueInfoProto
	for _, v := range g.GetInput() {
		if v.GetName() == input {
			in = v
		}
	}
	dims := in.GetType().GetTensorType().GetShape().GetDim()
	if len(dims) != 4 {
		return fmt.Errorf("%w: input %q: rank %d, want 4", ErrModel, input, len(dims))
	}
	hi, wi := 2, 3
	if layout == "NHWC" {
		hi, wi = 1, 2
	}
	dims[hi].Value = &onnx.TensorShapeProto_Dimension_DimParam{DimParam: dimHeight}
	dims[wi].Value = &onnx.TensorShapeProto_Dimension_DimParam{DimParam: dimWidth}
	g.ValueInfo = nil
	for _, o := range g.GetOutput() {
		if tt := o.GetType().GetTensorType(); tt != nil {
			tt.Shape = nil
		}
	}
	return nil
}
