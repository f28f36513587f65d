# Copyright (c) selfpatch_mm contributors. All rights reserved.
__all__ = []
