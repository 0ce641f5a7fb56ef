-- CreateIndex
CREATE INDEX "LogLine_at_idx" ON "LogLine"("at");

