package engine

import (
	"context"
	"fmt"
	"strconv"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
)

// writeRequest is the common part of Insert and Upsert.
type writeRequest struct {
	db, collection, partition string
	fields                    []*schemapb.FieldData
	numRows                   int
	upsert, partial           bool
}

type writeResult struct {
	ids *schemapb.IDs
	n   int64
	ts  uint64
}

func (s *server) Insert(ctx context.Context, req *milvuspb.InsertRequest) (*milvuspb.MutationResult, error) {
	if st := s.notReady(); st != nil {
		return &milvuspb.MutationResult{Status: st}, nil
	}
	res, err := s.e.write(writeRequest{
		db: dbName(ctx, req.GetDbName()), collection: req.GetCollectionName(), partition: req.GetPartitionName(),
		fields: req.GetFieldsData(), numRows: int(req.GetNumRows()),
	})
	if err != nil {
		return &milvuspb.MutationResult{Status: statusOf(err)}, nil
	}
	return &milvuspb.MutationResult{Status: okStatus(), IDs: res.ids, SuccIndex: succIndex(res.n), InsertCnt: res.n, Timestamp: res.ts}, nil
}

func (s *server) Upsert(ctx context.Context, req *milvuspb.UpsertRequest) (*milvuspb.MutationResult, error) {
	if st := s.notReady(); st != nil {
		return &milvuspb.MutationResult{Status: st}, nil
	}
	res, err := s.e.write(writeRequest{
		db: dbName(ctx, req.GetDbName()), collection: req.GetCollectionName(), partition: req.GetPartitionName(),
		fields: req.GetFieldsData(), numRows: int(req.GetNumRows()), upsert: true, partial: req.GetPartialUpdate(),
	})
	if err != nil {
		return &milvuspb.MutationResult{Status: statusOf(err)}, nil
	}
	return &milvuspb.MutationResult{Status: okStatus(), IDs: res.ids, SuccIndex: succIndex(res.n), UpsertCnt: res.n, Timestamp: res.ts}, nil
}

func succIndex(n int64) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = uint32(i)
	}
	return out
}

func (e *Engine) write(w writeRequest) (writeResult, error) {
	op := "insert"
	if w.upsert {
		op = "upsert"
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.collectionLocked(w.db, w.collection)
	if err != nil {
		return writeResult{}, err
	}
	if !isPartitionOK(w.partition) {
		return writeResult{}, errPartitionNotFound(w.partition)
	}
	rows, provided, err := c.decodeRows(w)
	if err != nil {
		return writeResult{}, fmt.Errorf("%s into %s.%s: %w", op, w.db, c.name, err)
	}
	ts := e.clock.next()
	pk := c.pkField()
	if !provided[c.pkPos] {
		// autoID: IDs come from the global allocator, unique across collections.
		for _, r := range rows {
			id := int64(e.clock.next())
			if pk.DataType == schemapb.DataType_VarChar {
				r[c.pkPos] = strconv.FormatInt(id, 10)
			} else {
				r[c.pkPos] = id
			}
		}
	}
	keys := make([]any, len(rows))
	for i, r := range rows {
		if w.partial {
			if err := c.mergePartial(r, provided); err != nil {
				return writeResult{}, fmt.Errorf("%s into %s.%s: %w", op, w.db, c.name, err)
			}
		}
		keys[i] = r[c.pkPos]
	}
	for _, r := range rows {
		c.put(r)
	}
	return writeResult{ids: pkIDs(pk, keys), n: int64(len(rows)), ts: ts}, nil
}

// mergePartial completes a partial-update row from the stored version; a new
// row must then carry every required field.
func (c *collection) mergePartial(r row, provided []bool) error {
	old, exists := c.byPK[r[c.pkPos]]
	for pos, f := range c.schema.Fields {
		switch {
		case provided[pos]:
		case exists:
			r[pos] = c.rows[old][pos]
		case !f.Nullable && !f.IsDynamic:
			return errInvalid("partial update of a new entity missed field `%s`", f.Name)
		}
	}
	return nil
}

// decodeRows matches the request columns to schema fields and returns the
// rows plus which field positions the client supplied.
func (c *collection) decodeRows(w writeRequest) ([]row, []bool, error) {
	n := w.numRows
	if n <= 0 {
		return nil, nil, errInvalid("num_rows should be greater than 0")
	}
	byPos := make(map[int]*schemapb.FieldData, len(w.fields))
	for _, fd := range w.fields {
		pos := -1
		switch {
		case fd.GetIsDynamic():
			pos = c.dynPos
		default:
			pos, _ = c.field(fd.GetFieldName())
		}
		if pos < 0 {
			return nil, nil, errInvalid("field %s does not exist in collection %s", fd.GetFieldName(), c.name)
		}
		if _, dup := byPos[pos]; dup {
			return nil, nil, errInvalid("duplicated field name %s found", fd.GetFieldName())
		}
		byPos[pos] = fd
	}
	rows := make([]row, n)
	for i := range rows {
		rows[i] = make(row, len(c.schema.Fields))
	}
	provided := make([]bool, len(c.schema.Fields))
	for pos, f := range c.schema.Fields {
		fd, ok := byPos[pos]
		switch {
		case ok && pos == c.pkPos && f.AutoID && !w.upsert:
			return nil, nil, errInvalid("the value of the auto_id primary key field %s should not be passed", f.Name)
		case ok:
			vals, err := decodeColumn(f, fd, n)
			if err != nil {
				return nil, nil, err
			}
			for i, v := range vals {
				if v == nil && pos == c.pkPos {
					return nil, nil, errInvalid("primary key field %s cannot be null", f.Name)
				}
				rows[i][pos] = v
			}
			provided[pos] = true
		case pos == c.pkPos && f.AutoID, f.IsDynamic, f.Nullable, w.partial && pos != c.pkPos:
			// filled later (autoID), left empty ("{}" / null), or kept from the old row.
		default:
			return nil, nil, errInvalid("Insert missed an field `%s` to collection without set nullable==true or set default_value", f.Name)
		}
	}
	return rows, provided, nil
}

func (s *server) Delete(ctx context.Context, req *milvuspb.DeleteRequest) (*milvuspb.MutationResult, error) {
	resp := &milvuspb.MutationResult{}
	err := s.updateCollection(ctx, req, func(c *collection) error {
		keys, err := c.deleteWhere(req)
		if err != nil {
			return err
		}
		resp.IDs = pkIDs(c.pkField(), keys)
		resp.SuccIndex = succIndex(int64(len(keys)))
		resp.DeleteCnt = int64(len(keys))
		resp.Timestamp = s.e.clock.next()
		return nil
	})
	resp.Status = statusOf(err)
	return resp, nil
}

// deleteWhere removes the rows that match the request's filter and returns
// their primary keys. The caller holds e.mu for writing.
func (c *collection) deleteWhere(req *milvuspb.DeleteRequest) ([]any, error) {
	if !isPartitionOK(req.GetPartitionName()) {
		return nil, errPartitionNotFound(req.GetPartitionName())
	}
	if req.GetExpr() == "" {
		return nil, errInvalid("expr cannot be empty")
	}
	pred, err := compileFilter(c, req.GetExpr(), req.GetExprTemplateValues())
	if err != nil {
		return nil, fmt.Errorf("delete from %s: %w", c.name, err)
	}
	drop := make(map[int]bool)
	var keys []any
	for i, r := range c.rows {
		if pred(r) {
			drop[i] = true
			keys = append(keys, r[c.pkPos])
		}
	}
	c.remove(drop)
	return keys, nil
}
