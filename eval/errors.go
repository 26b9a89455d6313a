package eval

import "errors"

// ErrDataset reports a dataset that cannot be read or has no usable queries; the message names it.
var ErrDataset = errors.New("eval: bad dataset")

// ErrConfig reports an evaluation configuration that cannot run; the message names the field.
var ErrConfig = errors.New("eval: bad configuration")
